// Public API of @leffa-webgpu/train; populated as its modules land.
export {};
