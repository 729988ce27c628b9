import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, jvmCompilerSeconds } from './cpu';

// A JVM with hot code: its tiered compilers work from the first second.
const HOT_LOOP = `
public class Hot {
  static long mix(long x, int i) { return (x * 31 + i) ^ (x >>> 7); }
  public static void main(String[] args) throws Exception {
    long x = 1;
    long until = System.currentTimeMillis() + 60_000;
    while (System.currentTimeMillis() < until) {
      for (int i = 0; i < 1_000_000; i++) x = mix(x, i);
      if (x == 42) System.out.println(x);
    }
  }
}
`;

describe("the load generator's CPU accounting", () => {
  let dir: string;
  let jvm: ChildProcess;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sotto-cpu-'));
    writeFileSync(join(dir, 'Hot.java'), HOT_LOOP);
    // The source launcher compiles Hot.java in the JVM itself: plenty for the JIT compilers to do.
    jvm = spawn('java', ['-Xmx64m', join(dir, 'Hot.java')], { stdio: 'ignore' });
  });

  afterAll(() => {
    jvm.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts a JVM's JIT compiler threads apart, as part of its CPU, and none for a Node process", async () => {
    const pid = jvm.pid;
    if (pid === undefined) throw new Error('java did not start');
    let compiler = 0;
    for (let waited = 0; compiler === 0 && waited < 30_000; waited += 200) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      compiler = jvmCompilerSeconds({ jvm: pid })['jvm'] ?? 0;
    }
    expect(compiler).toBeGreaterThan(0);
    // Threads of the process: never more than the whole process used.
    expect(compiler).toBeLessThanOrEqual(cpuSeconds({ jvm: pid })['jvm'] ?? 0);
    expect(jvmCompilerSeconds({ node: process.pid })).toEqual({ node: 0 });
    // A process that has ended (or never was) has used nothing.
    expect(jvmCompilerSeconds({ gone: 2 ** 22 + 1 })).toEqual({ gone: 0 });
  });
});
