// swift-tools-version:6.0
import PackageDescription
import Foundation

let languageMode: [SwiftSetting] = [.swiftLanguageMode(.v5)]
/// One portable binary: the vector kernels (CDipvizKernels) are compiled for each instruction
/// set and chosen at start-up from what the processor reports, so no target CPU is set here.
let optimised: [SwiftSetting] = languageMode

let package = Package(
    name: "dipviz",
    products: [
        .executable(name: "dipviz", targets: ["dipviz"]),
        .library(name: "DipvizTensor", targets: ["DipvizTensor"]),
        .library(name: "DipvizPrior", targets: ["DipvizPrior"]),
        .library(name: "DipvizImage", targets: ["DipvizImage"]),
        .library(name: "DipvizONNX", targets: ["DipvizONNX"]),
        .library(name: "DipvizVisualize", targets: ["DipvizVisualize"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // C at the edge: one system-library target per C library.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CProtobufC", path: "Sources/CProtobufC", pkgConfig: "libprotobuf-c",
                       providers: [.apt(["libprotobuf-c-dev"])]),

        // CPUID and XGETBV (what the processor and the operating system support), and a forked
        // child for checking kernels that might fault.
        .target(name: "CCPUID", path: "Sources/CCPUID"),
        // The engine's vector kernels, once per instruction set (portable, AVX2+FMA, AVX-512),
        // each file with its own target attributes; DipvizTensor picks one table at start-up.
        .target(name: "CDipvizKernels", path: "Sources/CDipvizKernels",
                cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])]),

        // protobuf-c code generated from scripts/onnx.proto (scripts/generate-onnx-proto.sh).
        .target(name: "COnnxProto", dependencies: ["CProtobufC"], path: "Sources/COnnxProto",
                linkerSettings: [.linkedLibrary("protobuf-c")]),

        .target(name: "DipvizTensor", dependencies: ["CBLAS", "CCPUID", "CDipvizKernels"], swiftSettings: optimised),
        .target(name: "DipvizONNX", dependencies: ["COnnxProto", "CProtobufC", "DipvizTensor", "DipvizImage"],
                swiftSettings: optimised),
        .target(name: "DipvizImage", dependencies: ["CPNG", "CJPEG", "DipvizTensor"], swiftSettings: languageMode),
        .target(name: "DipvizPrior", dependencies: ["DipvizTensor"], swiftSettings: optimised),
        .target(name: "DipvizVisualize", dependencies: ["DipvizTensor", "DipvizPrior", "DipvizONNX", "DipvizImage"],
                swiftSettings: languageMode),
        .target(name: "DipvizGallery", dependencies: ["DipvizVisualize", "DipvizONNX", "DipvizImage",
                                                      .product(name: "Mustache", package: "swift-mustache")],
                resources: [.copy("Templates")], swiftSettings: languageMode),
        .target(name: "DipvizBench", dependencies: ["DipvizTensor", "DipvizPrior", "DipvizONNX", "DipvizVisualize"], swiftSettings: languageMode),
        .executableTarget(name: "dipviz", dependencies: [
            "DipvizTensor", "DipvizPrior", "DipvizImage", "DipvizONNX", "DipvizVisualize", "DipvizGallery", "DipvizBench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: languageMode),

        .testTarget(name: "DipvizTensorTests", dependencies: ["DipvizTensor", "DipvizPrior"],
                    resources: [.copy("Fixtures")], swiftSettings: languageMode),
        .testTarget(name: "DipvizGalleryTests", dependencies: ["DipvizGallery"], exclude: ["Golden", "Tools"], swiftSettings: languageMode),
        .testTarget(name: "DipvizVisualizeTests", dependencies: ["DipvizVisualize"], resources: [.copy("Fixtures")],
                    swiftSettings: languageMode),
        .testTarget(name: "DipvizONNXTests", dependencies: ["DipvizONNX"], exclude: ["Corpus"],
                    swiftSettings: languageMode),
        .testTarget(name: "DipvizImageTests", dependencies: ["DipvizImage"], resources: [.copy("Fixtures")],
                    swiftSettings: languageMode),
        .testTarget(name: "dipvizCLITests", dependencies: ["dipviz", "DipvizONNX", "DipvizImage", "DipvizTensor"], swiftSettings: languageMode),
    ]
)
