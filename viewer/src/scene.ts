// The 3D view: three.js scene, orbit controls, camera fit from the manifest's bounds, and the
// geometry of streamed frames (meshopt-decoded quantized buffers, placed by the part's matrix).
import * as THREE from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import { MeshoptDecoder } from 'three/examples/jsm/libs/meshopt_decoder.module.js';
import { COMPONENT_BYTES, type ComponentType, type FrameHeader, type ManifestLike, type VertexSection, sectionBytes } from '../../app/src/streamer/protocol';

export const BACKGROUND = 0xf0f2f5;

const ARRAYS: Record<ComponentType, new (buffer: ArrayBuffer) => THREE.TypedArray> = {
  i8: Int8Array,
  u8: Uint8Array,
  i16: Int16Array,
  u16: Uint16Array,
  u32: Uint32Array,
  f32: Float32Array,
};

function vertexAttribute(body: Uint8Array, section: VertexSection, count: number): THREE.BufferAttribute | THREE.InterleavedBufferAttribute {
  const stride = section.comps * COMPONENT_BYTES[section.type];
  const target = new Uint8Array(count * stride);
  MeshoptDecoder.decodeGltfBuffer(target, count, stride, sectionBytes(body, section), 'ATTRIBUTES');
  const array = new ARRAYS[section.type](target.buffer);
  if (section.comps === section.size) return new THREE.BufferAttribute(array, section.size, section.normalized);
  // Padded vertices (int16 xyz + 1 spare): an interleaved view skips the spare component.
  return new THREE.InterleavedBufferAttribute(new THREE.InterleavedBuffer(array, section.comps), section.size, 0, section.normalized);
}

export class ModelView {
  readonly renderer: THREE.WebGLRenderer;
  readonly scene = new THREE.Scene();
  readonly camera = new THREE.PerspectiveCamera(45, 1, 0.1, 1000);
  readonly controls: OrbitControls;
  private root = new THREE.Group();
  private groups = new Map<string, THREE.Group>();
  private materials = new Map<string, THREE.MeshStandardMaterial>();
  private dirty = true;
  readonly ready: Promise<void> = MeshoptDecoder.ready;

  constructor(private readonly canvas: HTMLCanvasElement) {
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
    this.renderer.setPixelRatio(Math.min(2, window.devicePixelRatio));
    this.scene.background = new THREE.Color(BACKGROUND);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x5d6470, 1.0));
    // The key light follows the camera (from above left, behind the viewer) so every side of
    // the model is lit when orbiting; its target moves with it.
    const key = new THREE.DirectionalLight(0xffffff, 2.2);
    key.position.set(-0.6, 1, 0.5);
    key.target.position.set(0, 0, -1);
    this.camera.add(key, key.target);
    this.scene.add(this.camera, this.root);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = true;
    this.controls.addEventListener('change', () => (this.dirty = true));
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.renderer.setAnimationLoop(() => {
      this.controls.update();
      if (!this.dirty) return;
      this.dirty = false;
      this.renderer.render(this.scene, this.camera);
    });
  }

  private resize(): void {
    const { clientWidth: w, clientHeight: h } = this.canvas;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }

  clear(): void {
    this.scene.remove(this.root);
    this.root.traverse((o) => (o as THREE.Mesh).geometry?.dispose());
    this.root = new THREE.Group();
    this.scene.add(this.root);
    this.groups.clear();
    this.dirty = true;
  }

  /** Points the camera at the model's bounds before any geometry arrives. */
  fit(manifest: ManifestLike): void {
    const b = manifest.bbox;
    if (!b) return;
    const box = new THREE.Box3(new THREE.Vector3(...b.min), new THREE.Vector3(...b.max));
    const center = box.getCenter(new THREE.Vector3());
    const radius = Math.max(1e-6, box.getSize(new THREE.Vector3()).length() / 2);
    const distance = radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2));
    this.camera.position.copy(center).add(new THREE.Vector3(1, 0.8, 1.2).normalize().multiplyScalar(distance * 1.05));
    this.camera.near = distance / 100;
    this.camera.far = distance * 10;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(center);
    this.controls.update();
    this.dirty = true;
  }

  private material(color: [number, number, number, number], doubleSided: boolean): THREE.MeshStandardMaterial {
    const key = `${color.join(',')}:${doubleSided}`;
    let m = this.materials.get(key);
    if (!m) {
      // glTF colours are linear, as is three's working colour space.
      m = new THREE.MeshStandardMaterial({
        color: new THREE.Color().setRGB(color[0], color[1], color[2], THREE.LinearSRGBColorSpace),
        opacity: color[3],
        transparent: color[3] < 1,
        metalness: 0.1,
        roughness: 0.55,
        side: doubleSided ? THREE.DoubleSide : THREE.FrontSide,
      });
      this.materials.set(key, m);
    }
    return m;
  }

  private group(part: string): THREE.Group {
    let g = this.groups.get(part);
    if (!g) {
      g = new THREE.Group();
      g.name = part;
      this.groups.set(part, g);
      this.root.add(g);
    }
    return g;
  }

  /** Adds a frame's geometry to its part; returns the triangles drawn. */
  addFrame(header: FrameHeader, body: Uint8Array): number {
    const matrix = new THREE.Matrix4().fromArray(header.matrix);
    const g = this.group(header.part);
    for (const prim of header.prims) {
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute('position', vertexAttribute(body, prim.position, prim.vertices));
      if (prim.normal) geometry.setAttribute('normal', vertexAttribute(body, prim.normal, prim.vertices));
      const size = prim.index.type === 'u16' ? 2 : 4;
      const indices = new Uint8Array(prim.indices * size);
      MeshoptDecoder.decodeGltfBuffer(indices, prim.indices, size, sectionBytes(body, prim.index), 'TRIANGLES');
      geometry.setIndex(new THREE.BufferAttribute(size === 2 ? new Uint16Array(indices.buffer) : new Uint32Array(indices.buffer), 1));
      if (!prim.normal) geometry.computeVertexNormals();
      const mesh = new THREE.Mesh(geometry, this.material(prim.color, prim.doubleSided));
      mesh.matrixAutoUpdate = false;
      mesh.matrix.copy(matrix);
      g.add(mesh);
    }
    this.dirty = true;
    return header.triangles;
  }

  /** Removes what a part drew (a part that came only partly before its connection ended). */
  dropPart(part: string): void {
    const g = this.groups.get(part);
    if (!g) return;
    g.traverse((o) => (o as THREE.Mesh).geometry?.dispose());
    g.clear();
    this.dirty = true;
  }

  setVisible(parts: string[], visible: boolean): void {
    for (const p of parts) {
      const g = this.groups.get(p) ?? this.group(p);
      g.visible = visible;
    }
    this.dirty = true;
  }

  /** Renders now (tests read the canvas right after). */
  renderNow(): void {
    this.renderer.render(this.scene, this.camera);
  }
}
