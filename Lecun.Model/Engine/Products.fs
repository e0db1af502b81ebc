/// The matrix products a layer declares for a pass (its kind lists them, see ILayerKind.Products):
/// what the routing table prints and the MKL call counter is checked against.
namespace Lecun.Model

/// The shape of one product call, as the engine issues it (row-major, CBLAS conventions).
type ProductShape =
    /// C[m,n] = op(A)[m,k] op(B)[k,n].
    | Gemm of transA: bool * transB: bool * m: int * n: int * k: int
    /// y = op(A) x, A [m,n].
    | Gemv of trans: bool * m: int * n: int

module ProductShape =
    let macs = function Gemm(_, _, m, n, k) -> int64 m * int64 n * int64 k | Gemv(_, m, n) -> int64 m * int64 n
    let describe = function
        | Gemm(ta, tb, m, n, k) -> $"""gemm {(if ta then "A^T" else "A")}{(if tb then "B^T" else "B")} {m}x{n}x{k}"""
        | Gemv(t, m, n) -> $"""gemv {(if t then "A^T x" else "A x")} {m}x{n}"""

/// One product of a path: `Calls` calls of `Shape` per pass of the path (per example or per batch).
type Product =
    { Path: string
      Layer: string
      /// forward, weight gradient or input gradient.
      Role: string
      Shape: ProductShape
      Calls: int
      /// The layer's planned path for it (PhasePermute products are fused where the provider allows).
      Kernel: KernelPath }

module Product =
    /// Products of the same role and shape as one entry, their calls added.
    let group (items: Product list) =
        items |> List.groupBy (fun p -> p.Role, p.Shape) |> List.map (fun (_, ps) -> { ps.Head with Calls = ps |> List.sumBy (fun p -> p.Calls) })
