/// Training-time changes to the input: random shifts of the digit.
module Lecun.Model.Augment

/// Copies a 16x16 image moved by (dx, dy) pixels into `dest`; the pixels it exposes take the background
/// value (unlike torch.roll, which would wrap the opposite border around).
let shift (source: float32 array) (offset: int) (dx: int) (dy: int) (background: float32) (dest: float32 array) =
    let side = Dataset.Side
    for y in 0 .. side - 1 do
        let sy = y - dy
        for x in 0 .. side - 1 do
            let sx = x - dx
            dest.[y * side + x] <-
                if sy >= 0 && sy < side && sx >= 0 && sx < side then source.[offset + sy * side + sx] else background
