extension Tensor {
    /// Matrix product of 2-D tensors, or of stacks of matrices with equal leading dimensions
    /// (a 2-D right operand is shared by every matrix of the stack).
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul of \(shape) and \(other.shape)")
        let batchShape = Array(shape.dropLast(2))
        precondition(other.rank == 2 || Array(other.shape.dropLast(2)) == batchShape,
                     "matmul batch dimensions of \(shape) and \(other.shape)")
        let batch = batchShape.reduce(1, *)
        let ar = shape[rank - 2], ac = shape[rank - 1]
        let br = other.shape[other.rank - 2], bc = other.shape[other.rank - 1]
        let (m, k) = transposeSelf ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeOther ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul inner dimensions \(shape) x \(other.shape) (transposes \(transposeSelf), \(transposeOther))")
        let bStep = other.rank == 2 ? 0 : br * bc
        let out = Tensor(uninitializedShape: batchShape + [m, n])
        for i in 0..<batch {
            BLAS.sgemm(transposeA: transposeSelf, transposeB: transposeOther, m: m, n: n, k: k,
                       a: data + i * ar * ac, lda: ac, b: other.data + i * bStep, ldb: bc,
                       beta: 0, c: out.data + i * m * n, ldc: n)
        }
        return Tensor.record(out, [self, other]) { _, g in
            // dA = dC op(B)^T (transposed back when A was used transposed); dB likewise.
            self.withGrad { ga in
                for i in 0..<batch {
                    let gc = g.data + i * m * n, bp = other.data + i * bStep, gap = ga.pointer + i * ar * ac
                    let beta: Float = ga.accumulate ? 1 : 0
                    if transposeSelf {
                        // A^T = op(B) dC^T  ->  A (k x m) = op(B) (k x n) * dC^T
                        BLAS.sgemm(transposeA: transposeOther, transposeB: true, m: k, n: m, k: n,
                                   a: bp, lda: bc, b: gc, ldb: n, beta: beta, c: gap, ldc: ac)
                    } else {
                        BLAS.sgemm(transposeA: false, transposeB: !transposeOther, m: m, n: k, k: n,
                                   a: gc, lda: n, b: bp, ldb: bc, beta: beta, c: gap, ldc: ac)
                    }
                }
            }
            other.withGrad { gb in
                for i in 0..<batch {
                    let gc = g.data + i * m * n, ap = self.data + i * ar * ac, gbp = gb.pointer + i * bStep
                    // A shared right operand sums the contributions of every matrix in the stack.
                    let beta: Float = (gb.accumulate || (bStep == 0 && i > 0)) ? 1 : 0
                    if transposeOther {
                        BLAS.sgemm(transposeA: true, transposeB: transposeSelf, m: n, n: k, k: m,
                                   a: gc, lda: n, b: ap, ldb: ac, beta: beta, c: gbp, ldc: bc)
                    } else {
                        BLAS.sgemm(transposeA: !transposeSelf, transposeB: false, m: k, n: n, k: m,
                                   a: ap, lda: ac, b: gc, ldb: n, beta: beta, c: gbp, ldc: bc)
                    }
                }
            }
        }
    }

    /// ONNX Gemm: alpha * op(A) op(B) + beta * C, with C broadcast to the result.
    public func gemm(_ b: Tensor, c: Tensor? = nil, alpha: Float = 1, beta: Float = 1,
                     transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        var y = matmul(b, transposeSelf: transposeA, transposeOther: transposeB)
        if alpha != 1 { y = y.scaled(by: alpha) }
        if let c { y = y + (beta == 1 ? c : c.scaled(by: beta)) }
        return y
    }

    /// PyTorch's Linear: x W^T + b with W of shape out x in.
    public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        gemm(weight, c: bias, transposeB: true)
    }
}
