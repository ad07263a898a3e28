// What the browser benchmarks share: a static server for the repository (only what lies
// under it) and headless Chromium with WebGPU, the system's own (never a download).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

// Serves ROOT on a free local port; `index`, when given, is the HTML answered for `/`.
// Resolves to the server's base URL and a function that closes it.
export async function serveRoot(index) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (path.includes('..')) { res.writeHead(400).end(); return; }
    if (path === '/' && index) { res.writeHead(200, { 'content-type': 'text/html' }).end(index); return; }
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

export function launchChromium() {
  const executablePath = execSync('command -v chromium', { encoding: 'utf8' }).trim();
  return chromium.launch({ executablePath, args: ['--enable-unsafe-webgpu'] });
}
