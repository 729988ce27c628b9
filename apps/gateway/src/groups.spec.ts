import { Groups } from './groups';

describe('Groups', () => {
  it('keeps each key its values, one or several, and forgets a key with none left', () => {
    const groups = new Groups<string, string>();
    groups.add('a', 'x');
    groups.add('a', 'x');
    expect(groups.get('a')).toEqual(['x']);
    groups.add('a', 'y');
    groups.add('b', 'z');
    expect(groups.get('a')).toEqual(['x', 'y']);
    expect(groups.get('b')).toEqual(['z']);
    groups.delete('a', 'x');
    expect(groups.get('a')).toEqual(['y']);
    groups.delete('a', 'nothing');
    groups.delete('a', 'y');
    expect(groups.get('a')).toEqual([]);
    groups.add('a', 'w');
    expect(groups.get('a')).toEqual(['w']);
    groups.clear();
    expect(groups.get('b')).toEqual([]);
  });

  it('hands out a copy, so values can be deleted while going through it', () => {
    const groups = new Groups<string, string>();
    ['x', 'y', 'z'].forEach((value) => groups.add('a', value));
    for (const value of groups.get('a')) groups.delete('a', value);
    expect(groups.get('a')).toEqual([]);
  });
});
