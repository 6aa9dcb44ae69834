// The scheduled keep-alive, will-delay and session-expiry sweep lands here.
export const handler = async (): Promise<void> => {};
