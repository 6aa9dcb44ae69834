/** A Lambda handler for emulator tests: answers after `event.ms` milliseconds, counting its runs per instance. */
let runs = 0;

export const handler = async (event: { ms: number }): Promise<{ runs: number }> => {
  runs++;
  await new Promise((resolve) => setTimeout(resolve, event.ms));
  return { runs };
};
