//! Limits that more than one part enforces, each in one place: the config
//! refuses what the part it configures would refuse or cut.

/// Sides of a model input at most, in pixels: MobileNet-family inputs are
/// 96 to 640; a float 8192x8192 input is already 800 MB per frame.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// Objects per detections message at most (about 100 bytes each): far
/// below any broker's packet limit; SSD heads keep 100 after NMS. More are
/// cut, best kept, and the message says so.
pub const MAX_OBJECTS: usize = 1000;
