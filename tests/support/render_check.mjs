// Opens an HTML report in headless Chromium (Debian's, driven by playwright-core), as a person
// would look at it: waits for the page, collects console messages and page errors, measures the
// charts and tables, screenshots the page and each chart, and decodes the chart screenshots to
// count the pixels that are not background. Prints one JSON object.
//
// usage: node render_check.mjs REPORT.html SCREENSHOT.png   (NODE_PATH must hold playwright-core)
import { createRequire } from 'node:module';
import { inflateSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
const require = createRequire(process.env.HUBPULSE_BROWSER_DIR + '/');
const { chromium } = require('playwright-core');

const [report, shot] = process.argv.slice(2);

// Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes).
function decodePng(buf) {
  let pos = 8, width = 0, height = 0, channels = 4;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      channels = { 2: 3, 6: 4 }[data[9]];
      if (data[8] !== 8 || !channels || data[12] !== 0) throw new Error('unsupported PNG');
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      let v = line[x];
      if (f === 1) v += a; else if (f === 2) v += b; else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      px[y * stride + x] = v & 255;
    }
  }
  return { width, height, channels, px };
}

function inkStats(png) {
  let ink = 0; const colours = new Set();
  for (let i = 0; i < png.px.length; i += png.channels) {
    const [r, g, b] = [png.px[i], png.px[i + 1], png.px[i + 2]];
    if (r < 235 || g < 235 || b < 235) { ink++; colours.add((r >> 4) << 8 | (g >> 4) << 4 | (b >> 4)); }
  }
  return { ink_fraction: ink / (png.width * png.height), colours: colours.size, width: png.width, height: png.height };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'] });
const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
const console_messages = [], page_errors = [], failed_requests = [];
page.on('console', m => console_messages.push({ type: m.type(), text: m.text() }));
page.on('pageerror', e => page_errors.push(String(e)));
page.on('requestfailed', r => failed_requests.push(r.url()));
const external = [];
page.on('request', r => { if (!r.url().startsWith('file:')) external.push(r.url()); });
await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });
const dom = await page.evaluate(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(s => {
    const r = s.getBoundingClientRect();
    const marks = [...s.querySelectorAll('rect')].filter(x => { const b = x.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
    return { label: s.getAttribute('aria-label'), width: r.width, height: r.height, marks: marks.length };
  });
  const tables = [...document.querySelectorAll('table')].map(t => t.querySelectorAll('tbody tr').length);
  return { title: document.title, charts, tables, text_length: document.body.innerText.length };
});
await page.screenshot({ path: shot, fullPage: true });
const chart_pixels = [];
for (const el of await page.locator('svg.chart').all()) chart_pixels.push(inkStats(decodePng(await el.screenshot())));
const page_png = inkStats(decodePng(await page.screenshot({ fullPage: true })));
await browser.close();
console.log(JSON.stringify({ ...dom, chart_pixels, page_png, console_messages, page_errors, failed_requests, external }));
