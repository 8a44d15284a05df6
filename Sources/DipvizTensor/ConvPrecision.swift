import CDipvizKernels

/// The arithmetic of a frozen classifier's convolutions.
public enum ConvPrecision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Single precision throughout: the default.
    case fp32
    /// The Winograd products of constant weights in bfloat16 (8 significant bits) with
    /// single-precision sums (AVX-512 BF16); transforms, other convolutions and the
    /// optimisation stay in single precision. Trainable weights are never rounded.
    case bf16

    public var description: String { rawValue }

    /// Why this processor (`cpu`) at kernel level `path` cannot run `self`; nil when it can.
    public func unsupportedReason(cpu: CPUFeatures = .current, path: KernelPath = VectorKernels.active) -> String? {
        guard self == .bf16 else { return nil }
        if dipviz_bf16_kernels_table() == nil { return "this build has no bf16 kernels (x86-64 only)" }
        if !cpu.avx512bf16 { return "this processor lacks AVX-512 BF16" }
        if path < .avx512 { return "the kernels run at \(path) (\(VectorKernels.variable) is below avx512)" }
        return nil
    }

    /// Throws when this processor cannot run `self`.
    public func checkSupported(cpu: CPUFeatures = .current, path: KernelPath = VectorKernels.active) throws {
        if let reason = unsupportedReason(cpu: cpu, path: path) { throw ConvPrecisionError.unsupported(self, reason: reason) }
    }

    /// The bf16 kernels when `self` is bf16 and they run here (checked by `checkSupported`).
    var bf16Kernels: UnsafePointer<dipviz_bf16_kernels>? {
        guard self == .bf16 else { return nil }
        precondition(unsupportedReason() == nil, "bf16 convolutions asked for where they cannot run; check with checkSupported first")
        return dipviz_bf16_kernels_table()
    }
}

/// A precision the processor cannot run.
public enum ConvPrecisionError: Error, CustomStringConvertible, Equatable {
    case unsupported(ConvPrecision, reason: String)

    public var description: String {
        switch self {
        case let .unsupported(precision, reason):
            return "precision \(precision) needs AVX-512 BF16 and the avx512 kernels: \(reason); fp32 runs everywhere (--precision fp32)"
        }
    }
}
