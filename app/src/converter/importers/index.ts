import type { Document } from '@gltf-transform/core';
import { engineFor, type Format } from '../formats';
import type { Quality } from '../types';
import { importAssimp, loadAssimp } from './assimp';
import { importIfc, loadIfc } from './ifc';
import { importOcct, loadOcct } from './occt';

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

export function importModel(input: ImportInput, quality: Quality): Promise<Imported> {
  switch (engineFor(input.format)) {
    case 'occt':
      return importOcct(input, quality);
    case 'ifc':
      return importIfc(input);
    case 'assimp':
      return importAssimp(input);
  }
}

/** Loads every engine ahead of the first job (the warm mode's reason to exist). */
export async function preloadEngines(): Promise<void> {
  await Promise.all([loadOcct(), loadAssimp(), loadIfc()]);
}
