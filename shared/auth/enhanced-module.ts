/**
 * MQTT 5 AUTH methods of your own, from an ES module named by `NIMBUS_ENHANCED_AUTH_MODULE`
 * (docs/adr/0022-enhanced-authentication-and-sys-topics.md). Loaded once, at cold start; a module
 * that cannot be loaded or is not an authenticator stops the function there.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type EnhancedAuthenticator, enhancedMethods } from './enhanced.js';

function isEnhancedAuthenticator(value: unknown): value is EnhancedAuthenticator {
  const candidate = value as Partial<EnhancedAuthenticator> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    Array.isArray(candidate.methods) &&
    candidate.methods.every((m) => typeof m === 'string' && m !== '') &&
    typeof candidate.start === 'function' &&
    typeof candidate.continue === 'function'
  );
}

/**
 * The module's default export, checked. The path is absolute, or relative to the function's code
 * directory (Lambda's /var/task).
 *
 * @example
 * const mine = await loadEnhancedAuthenticator('auth/otp.mjs'); // mine.methods: ['X-OTP']
 */
export async function loadEnhancedAuthenticator(path: string): Promise<EnhancedAuthenticator> {
  const file = isAbsolute(path) ? path : resolve(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), path);
  let loaded: { default?: unknown };
  try {
    loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (error) {
    throw new Error(`enhanced authentication module ${path}: ${(error as Error).message}`);
  }
  if (!isEnhancedAuthenticator(loaded.default))
    throw new Error(
      `enhanced authentication module ${path}: its default export must be { methods: string[], start(method, data, client), continue(method, state, data, client) }`,
    );
  return loaded.default;
}

/**
 * The context with the module's methods added in front of the ones it has (SCRAM-SHA-512); as it
 * is without a module.
 *
 * @example
 * const broker = await withEnhancedAuthModule(brokerFromEnv(process.env));
 */
export async function withEnhancedAuthModule<
  T extends {
    readonly config: { readonly enhancedAuthModule?: string };
    readonly enhancedAuthenticator?: EnhancedAuthenticator;
  },
>(ctx: T): Promise<T> {
  const path = ctx.config.enhancedAuthModule;
  if (!path) return ctx;
  const mine = await loadEnhancedAuthenticator(path);
  const builtIn = ctx.enhancedAuthenticator;
  return { ...ctx, enhancedAuthenticator: enhancedMethods(builtIn ? [mine, builtIn] : [mine]) };
}
