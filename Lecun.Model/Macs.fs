/// What a multiply-accumulate count covers: the products of one digit's forward pass and of one
/// training presentation, from the layout alone (bench's rates, the share of the work MKL served).
module Lecun.Model.Macs

/// One MAC per connection weight of every layer.
let forward (layout: NetLayout) = int64 layout.Macs

/// The input gradient of the first layer (the image's) is never computed.
let notComputed (layout: NetLayout) = int64 (List.head layout.Layers).Macs

/// Forward (one MAC per weight), the weight gradients (one per weight: dW += dPre * x) and the input
/// gradients of every layer but the first (one per weight: dIn += W * dPre). Bias terms, activations,
/// the loss gradient and the optimizer's update are not counted.
let trainingPresentation (layout: NetLayout) = 3L * forward layout - notComputed layout
