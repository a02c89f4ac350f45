// Public API of @leffa-webgpu/models; populated as its modules land.
export {};
