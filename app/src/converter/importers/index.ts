import type { Document } from '@gltf-transform/core';
import { engineFor, type Format } from '../formats';
import type { ConvertLimits, Quality } from '../types';
import { importAssimp, loadAssimp } from './assimp';
import { importIfc, loadIfc } from './ifc';
import { importOcct, loadOcct } from './occt';
import { importOcctNative, occtEngine } from './occt-native';

export interface ImportInput {
  /** The file's base name, as the user named it. */
  name: string;
  format: Format;
  content: Uint8Array;
  /** The folder the input lives in: references (MTL, .bin, textures) are relative to it. */
  dir?: string;
  /** The only folder referenced files may be read from (the input's own folder, or an extracted archive's root). @default dir */
  baseDir?: string;
}

export type Units = 'millimeter' | 'meter' | 'unknown';

export interface Imported {
  doc: Document;
  units: Units;
}

/** Where the file is and where the conversion may write: the native engine reads and writes files. */
export interface ImportPlace {
  path: string;
  outputDir: string;
  limits?: ConvertLimits;
}

export function importModel(input: ImportInput, quality: Quality, place: ImportPlace): Promise<Imported> {
  switch (engineFor(input.format)) {
    case 'occt':
      return occtEngine() === 'native' ? importOcctNative(input, quality, place) : importOcct(input, quality);
    case 'ifc':
      return importIfc(input);
    case 'assimp':
      return importAssimp(input);
  }
}

/** Loads every engine ahead of the first job (the warm mode's reason to exist). */
export async function preloadEngines(): Promise<void> {
  // The native B-rep engine is a process per file: nothing of it to load ahead.
  await Promise.all([occtEngine() === 'wasm' ? loadOcct() : undefined, loadAssimp(), loadIfc()]);
}
