// The viewer in Debian's headless Chromium (playwright-core drives /usr/bin/chromium; no browser
// is downloaded), served by the api in single-machine mode, against the real api, worker and
// streamer: enter the key, upload a real STEP assembly, wait for ready, stream it, and read the
// canvas back: the model's colours must cover the middle of the view.
//
// CADFLEET_UPDATE_SCREENSHOT=1 writes docs/viewer.png (the README's screenshot).
import fs from 'node:fs';
import path from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, type Harness, ROOT, SAMPLES, apiClient, startHarness } from '../service/harness';
import { STREAM_ENV, type StreamerProcess, startStreamer } from '../streamer/streamers';
import { VIEWER_CSP } from '../../app/src/api/viewer-static';
import { seedModels } from '../helpers/seed-models';

// The page's globals, for the functions that run inside it (the tests compile without the DOM library).
interface PageCanvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { drawImage(img: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}
declare const document: {
  createElement(tag: 'canvas'): PageCanvas;
  body: { dataset: Record<string, string | undefined> };
  querySelectorAll(selector: string): Iterable<{ style: { visibility: string } }>;
};
declare const Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };

const CHROMIUM = process.env.CADFLEET_CHROMIUM ?? '/usr/bin/chromium';
const VIEWER_DIR = path.join(ROOT, 'dist/viewer');

let h: Harness;
let api: AppProcess;
let streamer: StreamerProcess;
let key: string;
let browser: BrowserContext;
let page: Page;

interface CanvasReport {
  width: number;
  height: number;
  /** Share of pixels that differ from the background. */
  covered: number;
  /** Share of the middle ninth of the view that differs from the background. */
  centre: number;
  /** Pixels by dominant channel (the as1 assembly: red nuts, blue bolts, green bracket). */
  reds: number;
  greens: number;
  blues: number;
}

/** Takes a real screenshot of the canvas and measures it in the page (a 2D canvas decodes the PNG). */
async function readCanvas(file?: string): Promise<CanvasReport> {
  // The status line floats over the canvas: hide it for the measurement.
  const overlays = (visibility: string) => page.evaluate((v) => {
    for (const el of document.querySelectorAll('#hud, #message')) el.style.visibility = v;
  }, visibility);
  await overlays('hidden');
  const png = await page.locator('#view').screenshot({ path: file });
  await overlays('');
  return page.evaluate(async (b64: string) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext('2d')!;
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    const bg = [0xf0, 0xf2, 0xf5];
    let covered = 0;
    let centre = 0;
    let centreTotal = 0;
    let reds = 0;
    let greens = 0;
    let blues = 0;
    for (let y = 0; y < c.height; y++) {
      for (let x = 0; x < c.width; x++) {
        const i = (y * c.width + x) * 4;
        const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
        const differs = Math.abs(r - bg[0]!) + Math.abs(g - bg[1]!) + Math.abs(b - bg[2]!) > 24;
        const inCentre = x > c.width / 3 && x < (2 * c.width) / 3 && y > c.height / 3 && y < (2 * c.height) / 3;
        if (inCentre) centreTotal++;
        if (!differs) continue;
        covered++;
        if (inCentre) centre++;
        if (r > g + 60 && r > b + 60) reds++;
        else if (g > r + 40 && g > b + 40) greens++;
        else if (b > r + 60 && b > g + 60) blues++;
      }
    }
    return { width: c.width, height: c.height, covered: covered / (c.width * c.height), centre: centre / centreTotal, reds, greens, blues };
  }, png.toString('base64'));
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(VIEWER_DIR, 'index.html'))) throw new Error('dist/viewer is missing: npm run build');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  h = await startHarness('viewer', { env: STREAM_ENV });
  api = await h.start('api', { env: { CADFLEET_VIEWER_DIR: VIEWER_DIR } });
  await h.start('worker');
  streamer = await startStreamer(h, 'viewer-streamer');
  key = await h.createKey('viewer');
  // A fresh profile per run, in the harness's own directory.
  browser = await chromium.launchPersistentContext(path.join(h.dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    viewport: { width: 1280, height: 800 },
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // WebGL without a GPU: ANGLE on SwiftShader (software).
      '--use-gl=angle',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  await streamer?.stop();
  await h?.stop();
});

describe('viewer', () => {
  it('uploads a STEP assembly, shows its progress, streams it and draws it in colour', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // The page runs under its Content-Security-Policy: a blocked script, WebAssembly or socket shows here.
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    const response = await page.goto(api.url);
    expect(response?.headers()['content-security-policy']).toBe(VIEWER_CSP);
    await page.locator('#key-form').waitFor();
    await page.fill('#key', key);
    await page.click('#key-form button[type=submit]');
    await page.locator('#upload-form').waitFor();

    // The list follows the project's event stream: no polling while the model converts.
    await page.waitForFunction(() => document.body.dataset.eventStream === 'open', undefined, { timeout: 30_000 });
    const listings: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/v1/models' && r.method() === 'GET') listings.push(r.url());
    });
    await page.setInputFiles('#file', SAMPLES.assembly);
    await page.click('#upload-form button[type=submit]');
    const row = page.locator('#models li', { hasText: 'as1-oc-214.stp' });
    await row.waitFor();
    await page.locator('#models li[data-state=ready]', { hasText: 'as1-oc-214.stp' }).waitFor({ timeout: 90_000 });
    // One listing after the upload's answer, none while it converted; the states came as events.
    expect(listings.length).toBeLessThanOrEqual(1);
    expect(Number(await page.evaluate(() => document.body.dataset.events))).toBeGreaterThanOrEqual(3);

    // Nothing opened yet: the canvas is background only (the check below can tell).
    const empty = await readCanvas();
    expect(empty.covered).toBeLessThan(0.001);

    await row.locator('button.view').click();
    await page.waitForFunction(() => ['complete', 'error'].includes(document.body.dataset.stream ?? ''), undefined, { timeout: 60_000 });
    expect(await page.evaluate(() => document.body.dataset.stream)).toBe('complete');

    const modelId = await row.getAttribute('data-id');
    const manifest = (await (await apiClient(api.url, key).request('GET', `/api/v1/models/${modelId}/files/manifest.json`)).json()) as { parts: Array<{ meshes: number[] }> };
    const geometryParts = manifest.parts.filter((p) => p.meshes.length > 0).length;
    expect(await page.evaluate(() => Number(document.body.dataset.parts))).toBe(geometryParts);
    expect(await page.evaluate(() => document.body.dataset.node)).toBe('viewer-streamer');
    expect(Number(await page.evaluate(() => document.body.dataset.firstGeometryMs))).toBeGreaterThan(0);
    expect(await page.locator('#parts label.pending').count()).toBe(0);

    const update = process.env.CADFLEET_UPDATE_SCREENSHOT === '1';
    if (update) await page.screenshot({ path: path.join(ROOT, 'docs/viewer.png') });
    const shown = await readCanvas(path.join(h.dir, 'canvas.png'));
    expect(shown.width).toBeGreaterThan(600);
    expect(shown.covered).toBeGreaterThan(0.05);
    expect(shown.centre).toBeGreaterThan(0.2);
    // The manifest's colours, lit: red nuts, blue bolts, a green bracket.
    expect(shown.reds).toBeGreaterThan(100);
    expect(shown.blues).toBeGreaterThan(100);
    expect(shown.greens).toBeGreaterThan(100);

    // The part tree hides and shows: unticking the root leaves the background only.
    const rootBox = page.locator('#parts > li > label input[type=checkbox]').first();
    await rootBox.uncheck();
    await page.waitForTimeout(200);
    expect((await readCanvas()).covered).toBeLessThan(0.001);
    await rootBox.check();
    await page.waitForTimeout(200);
    expect((await readCanvas()).covered).toBeGreaterThan(0.05);
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });

  it('sends several files as one .zip, asks which model to open when there are two, and converts the chosen one', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const spider = ['spider.obj', 'spider.mtl', 'SpiderTex.jpg', 'drkwood2.jpg', 'engineflare1.jpg', 'wal67ar_small.jpg', 'wal69ar_small.jpg'].map((f) => `/usr/share/assimp/models/OBJ/${f}`);
    const box = ['BoxTextured.gltf', 'BoxTextured0.bin', 'CesiumLogoFlat.png'].map((f) => `/usr/share/assimp/models/glTF2/BoxTextured-glTF/${f}`);
    await page.setInputFiles('#file', [...spider, ...box]);
    expect(await page.locator('#upload-status').textContent()).toBe('10 files, sent as one .zip');
    await page.click('#upload-form button[type=submit]');
    // The api answers 400 with the candidates: the page offers them.
    await page.locator('#root:not([hidden])').waitFor({ timeout: 30_000 });
    expect(await page.locator('#root option').allTextContents()).toEqual(['spider.obj', 'BoxTextured.gltf']);
    await page.selectOption('#root', 'BoxTextured.gltf');
    await page.click('#upload-form button[type=submit]');
    const row = page.locator('#models li[data-state=ready]', { hasText: 'spider.zip' });
    await row.waitFor({ timeout: 90_000 });
    expect(await row.locator('.name').getAttribute('title')).toContain('opened at BoxTextured.gltf');
    expect(await page.locator('#root').isHidden()).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('loads the next page of models as the list is scrolled to its end, each model once, in order', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const many = await h.createKey('viewer-many');
    await seedModels(h.db, { count: 130, project: 'viewer-many', name: 'scrolled-', sameTime: 2 });
    await page.click('#forget-key');
    await page.locator('#key-form').waitFor();
    await page.fill('#key', many);
    await page.click('#key-form button[type=submit]');
    await page.waitForFunction(() => document.body.dataset.modelsListed === '50', undefined, { timeout: 30_000 });
    expect(await page.locator('#models li').count()).toBe(50);
    // Scrolling the side panel to the list's end brings the next page, twice.
    for (const shown of ['100', '130']) {
      await page.locator('#models-more').scrollIntoViewIfNeeded();
      await page.waitForFunction((want) => document.body.dataset.modelsListed === want, shown, { timeout: 30_000 });
    }
    const ids = await page.locator('#models li').evaluateAll((items) => items.map((li) => (li as unknown as { dataset: { id: string } }).dataset.id));
    const { rows } = await h.db.query<{ id: string }>("SELECT id FROM models WHERE project = 'viewer-many' ORDER BY created_at DESC, id DESC");
    expect(ids).toEqual(rows.map((r) => r.id));
    // The last page has no next: nothing more to load.
    expect(await page.locator('#models-more').isHidden()).toBe(true);
    expect(pageErrors).toEqual([]);
  });
});
