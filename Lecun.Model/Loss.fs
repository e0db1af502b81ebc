/// Loss functions: the value for one example and its gradient with respect to the outputs.
namespace Lecun.Model

type Loss =
    /// Mean over the outputs of (y - t)^2, targets +1 for the true class and -1 otherwise (the paper).
    | Mse
    /// Half the summed squared error, (1/2) sum (y - t)^2: the other reading of the paper's "MSE".
    | MseHalf
    /// Softmax over the outputs, then the negative log-likelihood of the true class.
    | SoftmaxCrossEntropy

module Loss =
    let names = [ Mse, "mse"; MseHalf, "mse-half"; SoftmaxCrossEntropy, "softmax-ce" ]
    let name (l: Loss) = NameTable.name names l
    let parse (text: string) = NameTable.parse "loss" names text

    let inline private target (label: int) (k: int) = if k = label then 1.0f else -1.0f

    /// Loss of one example whose `outputs` values start at y[offset].
    let value (loss: Loss) (y: float32 array) (offset: int) (outputs: int) (label: int) : float =
        match loss with
        | Mse | MseHalf ->
            let mutable sum = 0.0
            for k in 0 .. outputs - 1 do
                let d = float (y.[offset + k] - target label k)
                sum <- sum + d * d
            if loss = Mse then sum / float outputs else 0.5 * sum
        | SoftmaxCrossEntropy ->
            let mutable m = System.Double.NegativeInfinity
            for k in 0 .. outputs - 1 do
                m <- max m (float y.[offset + k])
            let mutable z = 0.0
            for k in 0 .. outputs - 1 do
                z <- z + exp (float y.[offset + k] - m)
            m + log z - float y.[offset + label]

    /// Writes dLoss/dy of one example into dOut[0 .. outputs-1].
    let gradient (loss: Loss) (y: float32 array) (offset: int) (outputs: int) (label: int) (dOut: float32 array) =
        match loss with
        | Mse ->
            let scale = 2.0f / float32 outputs
            for k in 0 .. outputs - 1 do
                dOut.[k] <- scale * (y.[offset + k] - target label k)
        | MseHalf ->
            for k in 0 .. outputs - 1 do
                dOut.[k] <- y.[offset + k] - target label k
        | SoftmaxCrossEntropy ->
            let mutable m = System.Single.NegativeInfinity
            for k in 0 .. outputs - 1 do
                m <- max m y.[offset + k]
            let mutable z = 0.0f
            for k in 0 .. outputs - 1 do
                let e = exp (y.[offset + k] - m)
                dOut.[k] <- e
                z <- z + e
            for k in 0 .. outputs - 1 do
                dOut.[k] <- dOut.[k] / z - (if k = label then 1.0f else 0.0f)

    /// Index of the largest output (the predicted class); ties go to the lower index.
    let argmax (y: float32 array) (offset: int) (outputs: int) =
        let mutable best = 0
        for k in 1 .. outputs - 1 do
            if y.[offset + k] > y.[offset + best] then best <- k
        best
