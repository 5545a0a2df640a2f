#!/usr/bin/env node
// Thin launcher: the converter is bundled into dist/ by `npm run build` (run by `npm ci`).
import '../dist/cadfleet-convert.js';
