import Foundation

extension Tensor {
    /// Batch normalisation over N, H, W for each channel of an NCHW (or NC) tensor.
    /// In training mode it normalises with the batch statistics and updates the running ones
    /// (unbiased variance, PyTorch's momentum convention); otherwise it uses the running ones.
    /// `replication` > 1 says the tensor stands for its nearest-upsampled version with each value
    /// repeated that many times: the same statistics, but the unbiased running variance counts
    /// the repeated values.
    public func batchNorm(gamma: Tensor?, beta: Tensor?, runningMean: Tensor, runningVar: Tensor,
                          training: Bool, momentum: Float = 0.1, epsilon: Float = 1e-5, replication: Int = 1) -> Tensor {
        precondition(rank >= 2, "batch norm needs N x C x ..., got \(shape)")
        let n = shape[0], c = shape[1], s = count / Swift.max(n * c, 1)
        precondition(runningMean.count == c && runningVar.count == c, "batch norm statistics for \(c) channels")
        let m = n * s
        let x = data
        let stats = TensorStorage(count: 2 * c)  // mean, 1/std used by the forward pass
        let mean = stats.pointer, invStd = stats.pointer + c
        let kernels = VectorKernels.current
        Parallel.forEach(c, itemCost: m) { ch in
            if training {
                var sum = 0.0, sq = 0.0
                for b in 0..<n {
                    let (a, q) = Reductions.sumAndSquares(x + (b * c + ch) * s, s, kernels: kernels)
                    sum += a; sq += q
                }
                let mu = sum / Double(m)
                let variance = Swift.max(sq / Double(m) - mu * mu, 0)
                mean[ch] = Float(mu)
                invStd[ch] = Float(1 / (variance + Double(epsilon)).squareRoot())
                let mr = m * replication
                let unbiased = mr > 1 ? variance * Double(mr) / Double(mr - 1) : variance
                runningMean.data[ch] = (1 - momentum) * runningMean.data[ch] + momentum * Float(mu)
                runningVar.data[ch] = (1 - momentum) * runningVar.data[ch] + momentum * Float(unbiased)
            } else {
                mean[ch] = runningMean.data[ch]
                invStd[ch] = 1 / (runningVar.data[ch] + epsilon).squareRoot()
            }
        }
        let out = Tensor(uninitializedShape: shape)
        let y = out.data
        Parallel.forEach(n * c, itemCost: s) { p in
            let ch = p % c
            let scale = (gamma?.data[ch] ?? 1) * invStd[ch]
            let shift = (beta?.data[ch] ?? 0) - mean[ch] * scale
            let src = x + p * s, dst = y + p * s
            for i in 0..<s { dst[i] = src[i] * scale + shift }
        }
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        return Tensor.record(out, inputs) { _, g in
            withExtendedLifetime(stats) {
                let dy = g.data
                // Per channel: sum(dy) and sum(dy * xhat).
                let sums = TensorStorage(count: 2 * c)
                let sumDy = sums.pointer, sumDyXhat = sums.pointer + c
                let kernels = VectorKernels.current
                Parallel.forEach(c, itemCost: m) { ch in
                    var a = 0.0, b2 = 0.0
                    for b in 0..<n {
                        let p = (b * c + ch) * s
                        let (sd, dot) = Reductions.sumAndCentredDot(dy + p, x + p, shift: mean[ch], s, kernels: kernels)
                        a += sd; b2 += dot
                    }
                    sumDy[ch] = Float(a); sumDyXhat[ch] = Float(b2 * Double(invStd[ch]))
                }
                gamma?.withGrad { gg in for ch in 0..<c { gg.put(ch, sumDyXhat[ch]) } }
                beta?.withGrad { gb in for ch in 0..<c { gb.put(ch, sumDy[ch]) } }
                self.withGrad { gx in
                    Parallel.forEach(n * c, itemCost: s) { p in
                        let ch = p % c
                        let k = invStd[ch], gm = gamma?.data[ch] ?? 1, mu = mean[ch]
                        let base = p * s
                        let d = gx.pointer + base, g0 = dy + base, x0 = x + base
                        if training {
                            // dx = a * (m * dy - sum(dy) - xhat * sum(dy * xhat)), written as p * dy + q * x + r.
                            let a = gm * k / Float(m), sd = sumDy[ch], sdx = sumDyXhat[ch]
                            let p = a * Float(m), q = -a * sdx * k, r = -a * sd + a * sdx * k * mu
                            if gx.accumulate { for i in 0..<s { d[i] += p * g0[i] + q * x0[i] + r } }
                            else { for i in 0..<s { d[i] = p * g0[i] + q * x0[i] + r } }
                        } else {
                            let p = gm * k
                            if gx.accumulate { for i in 0..<s { d[i] += p * g0[i] } } else { for i in 0..<s { d[i] = p * g0[i] } }
                        }
                    }
                }
            }
        }
    }

    /// Local response normalisation across channels (Caffe / ONNX LRN):
    /// y = x / (bias + alpha/size * sum of x^2 over a window of `size` channels)^beta.
    public func localResponseNorm(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, bias: Float = 1) -> Tensor {
        precondition(rank >= 2, "LRN needs N x C x ..., got \(shape)")
        let n = shape[0], c = shape[1], s = count / Swift.max(n * c, 1)
        let lo = (size - 1) / 2, hi = size - 1 - lo
        let x = data
        let scaleStorage = TensorStorage(count: count)
        let scale = scaleStorage.pointer
        let k = alpha / Float(size)
        Parallel.forEach(n * c, itemCost: s * size) { p in
            let b = p / c, ch = p % c
            let dst = scale + p * s
            for i in 0..<s { dst[i] = 0 }
            for cc in Swift.max(0, ch - lo)...Swift.min(c - 1, ch + hi) {
                let src = x + (b * c + cc) * s
                for i in 0..<s { dst[i] += src[i] * src[i] }
            }
            for i in 0..<s { dst[i] = bias + k * dst[i] }
        }
        let out = Tensor(uninitializedShape: shape)
        let y = out.data
        Parallel.forEachRange(count, grain: 1 << 15) { r in for i in r { y[i] = x[i] * powf(scale[i], -beta) } }
        return Tensor.record(out, [self]) { _, g in
            withExtendedLifetime(scaleStorage) {
                self.withGrad { gx in
                    let dy = g.data
                    withScratch(self.count) { t in
                        // t = dy * x * scale^(-beta-1)
                        Parallel.forEachRange(self.count, grain: 1 << 15) { r in
                            for i in r { t[i] = dy[i] * x[i] * powf(scale[i], -beta - 1) }
                        }
                        Parallel.forEach(n * c, itemCost: s * size) { p in
                            let b = p / c, ch = p % c, base = p * s
                            let f = -2 * k * beta
                            for i in 0..<s {
                                var acc: Float = 0
                                for cc in Swift.max(0, ch - hi)...Swift.min(c - 1, ch + lo) { acc += t[(b * c + cc) * s + i] }
                                gx.put(base + i, dy[base + i] * powf(scale[base + i], -beta) + f * x[base + i] * acc)
                            }
                        }
                    }
                }
            }
        }
    }
}
