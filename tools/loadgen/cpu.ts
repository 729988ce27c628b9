import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat; 100 on every Linux Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** User plus system time, in ticks. */
  readonly ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; the fields after its last ')' do not.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

function allProcesses(): ProcStat[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => readStat(Number(entry)) ?? []);
}

/**
 * CPU seconds used so far by each named process and all its descendants
 * (PostgreSQL's backends, the JVM's threads are counted with their parents),
 * except descendants that are named themselves: a load generator that
 * started the servers is not charged with their time. Linux only: it reads
 * /proc.
 */
export function cpuSeconds(roots: Readonly<Record<string, number>>): Record<string, number> {
  const processes = allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const proc of processes) children.set(proc.ppid, [...(children.get(proc.ppid) ?? []), proc]);
  const byPid = new Map(processes.map((proc) => [proc.pid, proc]));
  const named = new Set(Object.values(roots));
  const treeTicks = (pid: number): number =>
    (byPid.get(pid)?.ticks ?? 0) +
    (children.get(pid) ?? [])
      .filter((child) => !named.has(child.pid))
      .reduce((sum, child) => sum + treeTicks(child.pid), 0);
  return Object.fromEntries(
    Object.entries(roots).map(([name, pid]) => [name, treeTicks(pid) / TICKS_PER_SECOND]),
  );
}

/** The JVM's just-in-time compiler threads: "C1 CompilerThread0", "C2 CompilerThre" (Linux cuts names at 15 characters). */
const JVM_COMPILER_THREAD = /^C[12] CompilerThre/;

/**
 * CPU seconds used so far by the JIT compiler threads of each named JVM
 * process: a broker compiles its hot paths for minutes after it starts, and
 * a short run would otherwise charge that one-off cost to every message.
 * Processes that are not JVMs have no such threads and get 0.
 */
export function jvmCompilerSeconds(roots: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(roots).map(([name, pid]) => {
      let ticks = 0;
      let threads: string[];
      try {
        threads = readdirSync(`/proc/${pid}/task`);
      } catch {
        threads = [];
      }
      for (const thread of threads) {
        try {
          const text = readFileSync(`/proc/${pid}/task/${thread}/stat`, 'utf8');
          const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
          if (!JVM_COMPILER_THREAD.test(comm)) continue;
          const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
          ticks += Number(fields[11]) + Number(fields[12]);
        } catch {
          // The thread ended between listing and reading.
        }
      }
      return [name, ticks / TICKS_PER_SECOND];
    }),
  );
}
