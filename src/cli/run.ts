/** Entry point for running the CLI from source (tests use it via tsx). */
import { main } from './main.js';

await main(process.argv);
