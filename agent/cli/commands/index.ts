/**
 * The command table. Each command lives in its own module; add new ones here.
 */
import type { Command } from '../command.js';

export const commands: Command[] = [];
