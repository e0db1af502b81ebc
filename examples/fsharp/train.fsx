// The C# example in F#: train lecun1989 for 3 passes on the embedded digits, compare with the
// paper, predict one digit. Build first: dotnet build Lecun.Fast.sln -c Release
#r "../../Lecun.Model/bin/Release/net10.0/Lecun.Native.dll"
#r "../../Lecun.Model/bin/Release/net10.0/FsToolkit.ErrorHandling.dll"
#r "../../Lecun.Model/bin/Release/net10.0/Lecun.Model.dll"
open Lecun.Model

let data = DigitData.Load "usps"
let run = Trainer.Train(data, TrainOptions(Passes = 3, PassCompleted = fun m -> printfn "pass %d  test error %.2f%%" m.Pass m.Test.Error))
printfn "test error: LeCun et al. 1989 %.2f%%, this run %.2f%% after %d passes" Paper1989.TestError run.Final.Test.Error run.Final.Pass
let digit = data.Test.Image(0).ToArray()
printfn "test digit 0: label %d, predicted %d" data.Test.Labels[0] (run.Model.Predict digit).Digit
