declare module 'gltf-validator' {
  interface Report {
    issues: {
      numErrors: number;
      numWarnings: number;
      numInfos: number;
      messages: Array<{ code: string; message: string; severity: number; pointer?: string }>;
    };
    info: { extensionsUsed?: string[]; drawCallCount?: number; totalTriangleCount?: number };
  }
  export function validateBytes(data: Uint8Array, options?: Record<string, unknown>): Promise<Report>;
  const validator: { validateBytes: typeof validateBytes };
  export default validator;
}
