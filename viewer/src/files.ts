// What the upload form sends: one file as it is (a model or a .zip), or several files (a picked
// folder, a multiple selection, a drop of files and folders) zipped here, paths kept, so that an
// OBJ keeps its MTL and textures and a glTF its .bin.
import { zipSync } from 'fflate';

export interface PickedFile {
  /** Path inside the selection (`spider/spider.mtl`), `/`-separated. */
  path: string;
  file: File;
}

/** The files of a drop, folders walked (File System Entry API, which every current browser has). */
export async function droppedFiles(items: DataTransferItemList): Promise<PickedFile[]> {
  const entries = [...items].map((item) => item.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  const out: PickedFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      out.push({ path: `${prefix}${entry.name}`, file });
      return;
    }
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries answers in batches until it answers none.
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
    }
  };
  for (const entry of entries) await walk(entry, '');
  return out;
}

/** Files of an <input type=file multiple> (or webkitdirectory, whose files carry their relative path). */
export function pickedFiles(list: FileList): PickedFile[] {
  return [...list].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** One file goes as it is; several become one .zip named after their folder (or the first model). */
export async function uploadable(files: PickedFile[]): Promise<File> {
  if (files.length === 1) return files[0]!.file;
  const top = new Set(files.map((f) => (f.path.includes('/') ? f.path.slice(0, f.path.indexOf('/')) : '')));
  const base = top.size === 1 && [...top][0] ? [...top][0]! : files[0]!.file.name.replace(/\.[^.]*$/, '');
  const contents: Record<string, Uint8Array> = {};
  for (const f of files) contents[f.path] = new Uint8Array(await f.file.arrayBuffer());
  // zipSync, not zip: fflate's async form runs in a Worker made from a blob: URL, which the
  // viewer's Content-Security-Policy (script-src 'self') rightly refuses.
  const bytes = zipSync(contents, { level: 6 });
  return new File([bytes as BlobPart], `${base}.zip`, { type: 'application/zip' });
}
