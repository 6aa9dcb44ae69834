/** How much the emulator tells: each level includes the ones before it. */
export const logLevels = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof logLevels)[number];

/** Leveled, human-readable emulator log lines; below the threshold they cost a comparison. */
export interface EmulatorLog {
  readonly level: LogLevel;
  enabled(level: LogLevel): boolean;
  /** A free-text diagnostic, e.g. a function that failed. */
  message(level: LogLevel, text: string): void;
  /** One client event, aligned in columns: `connect  kitchen  v5 ka=60 …`. */
  event(level: LogLevel, event: string, clientId: string, detail: string): void;
}

/** Wide enough for common event names and client ids; longer ones push the row right rather than being cut. */
const eventWidth = 11;
const clientWidth = 16;

const two = (n: number) => String(n).padStart(2, '0');

/**
 * The local wall-clock time as `HH:MM:SS.mmm`.
 *
 * @example
 * clockTime(new Date(2026, 0, 1, 9, 5, 7, 42)); // '09:05:07.042'
 */
export function clockTime(at: Date): string {
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.${String(at.getMilliseconds()).padStart(3, '0')}`;
}

/**
 * Whether `text` names a log level.
 *
 * @example
 * isLogLevel('debug'); // true
 */
export function isLogLevel(text: string): text is LogLevel {
  return (logLevels as readonly string[]).includes(text);
}

/**
 * A log that writes lines at or above `level` to `sink`.
 *
 * @example
 * const log = createLog('info', (line) => process.stderr.write(`${line}\n`));
 * log.event('info', 'connect', 'kitchen', 'v5 ka=60 clean session-present=0');
 * // 09:05:07.042  connect     kitchen           v5 ka=60 clean session-present=0
 */
export function createLog(
  level: LogLevel,
  sink: (line: string) => void,
  now: () => Date = () => new Date(),
): EmulatorLog {
  const threshold = logLevels.indexOf(level);
  const enabled = (at: LogLevel) => logLevels.indexOf(at) <= threshold;
  return {
    level,
    enabled,
    message(at, text) {
      if (enabled(at))
        sink(`${clockTime(now())}  ${at === 'error' || at === 'warn' ? `${at}: ` : ''}${text}`);
    },
    event(at, event, clientId, detail) {
      if (!enabled(at)) return;
      const row = `${clockTime(now())}  ${event.padEnd(eventWidth)} ${clientId.padEnd(clientWidth)} ${detail}`;
      sink(row.trimEnd());
    },
  };
}
