import BackboneEngine
import XCTest

/// `--precision auto`'s decision with injected probe results and CPU features: the tests do not
/// depend on the CPU they run on (only `testProbeMeasures` runs the real probe, and checks no value).
final class PrecisionChoiceTests: XCTestCase {
    let zen5 = CPUFeatures(vendor: "AuthenticAMD", family: 26, model: 2, flags: ["avx512f", "avx512_bf16"])
    let sapphire = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 143, flags: ["avx512f", "avx512_bf16", "amx_bf16", "amx_tile"])
    let emeraldNoAMX = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 207, flags: ["avx512f", "avx512_bf16"])
    let skylake = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 85, flags: ["avx512f"])
    let unknownBF16 = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 106, flags: ["avx512f", "avx512_bf16"])

    struct ProbeFailed: Error {}

    func testProbeDecidesWhenClear() {
        for cpu in [zen5, sapphire, emeraldNoAMX, skylake] {
            let fast = PrecisionDecision.decide(.auto, cpu: cpu, isa: .avx512CoreBF16) { 1.9 }
            XCTAssertEqual(fast.precision, .bf16)
            XCTAssertEqual(fast.source, .probe)
            XCTAssertEqual(fast.probeRatio, 1.9)
            XCTAssertEqual(fast.reason, "probe: bf16 convolutions 1.90x fp32's speed")
            let slow = PrecisionDecision.decide(.auto, cpu: cpu, isa: .avx512CoreBF16) { 0.6 }
            XCTAssertEqual(slow.precision, .fp32)
            XCTAssertEqual(slow.source, .probe)
        }
    }

    func testTableDecidesWhenProbeIsInconclusiveOrFails() {
        let cases: [(CPUFeatures, Precision)] = [(zen5, .bf16), (sapphire, .bf16), (emeraldNoAMX, .fp32), (skylake, .fp32), (unknownBF16, .fp32)]
        for (cpu, expected) in cases {
            let between = PrecisionDecision.decide(.auto, cpu: cpu, isa: .avx512CoreBF16) { 1.1 }
            XCTAssertEqual(PrecisionDecision.decide(.auto, cpu: cpu, isa: .avx512CoreBF16) { 0.8 }.source, .table)
            XCTAssertEqual(between.precision, expected, cpu.name)
            XCTAssertEqual(between.source, .table)
            XCTAssertEqual(between.probeRatio, 1.1)
            XCTAssertTrue(between.reason.contains("probe ratio 1.10 inconclusive"), between.reason)
            let failed = PrecisionDecision.decide(.auto, cpu: cpu, isa: .avx512CoreBF16) { throw ProbeFailed() }
            XCTAssertEqual(failed.precision, expected, cpu.name)
            XCTAssertEqual(failed.source, .table)
            XCTAssertNil(failed.probeRatio)
            XCTAssertTrue(failed.reason.hasPrefix("table: "), failed.reason)
        }
        XCTAssertTrue(PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx512CoreBF16) { nil }.reason.contains("AMD Zen 5 with avx512_bf16"))
    }

    func testExplicitPrecisionIsKeptWithoutProbing() {
        for requested in [PrecisionRequest.fp32, .bf16] {
            let d = PrecisionDecision.decide(requested, cpu: skylake, isa: .avx512CoreBF16) { XCTFail("probed"); return 0.5 }
            XCTAssertEqual(d.precision.rawValue, requested.rawValue)
            XCTAssertEqual(d.source, .requested)
        }
    }

    func testBF16WarningSaysByHowMuch() {
        let line = PrecisionDecision.bf16Warning(cpu: emeraldNoAMX, probeRatio: 0.7)
        XCTAssertEqual(line, "--precision bf16: on this CPU (GenuineIntel (family 6, model 207)) bf16 convolutions run at 0.70x fp32's speed (30% slower, measured by the probe); proceeding in bf16")
        XCTAssertNil(PrecisionDecision.bf16Warning(cpu: emeraldNoAMX, probeRatio: 1.5))   // the measurement wins
        XCTAssertNotNil(PrecisionDecision.bf16Warning(cpu: emeraldNoAMX, probeRatio: 0.95))   // unclear: the table says slower
        XCTAssertNil(PrecisionDecision.bf16Warning(cpu: zen5, probeRatio: 0.95))
        XCTAssertNil(PrecisionDecision.bf16Warning(cpu: zen5, probeRatio: nil))
        XCTAssertEqual(PrecisionDecision.bf16Warning(cpu: skylake, probeRatio: nil),
                       "--precision bf16: on this CPU (GenuineIntel (family 6, model 85)) bf16 is slower than fp32 (no avx512_bf16 or amx_bf16); proceeding in bf16")
    }

    /// fp32 convolutions that run as Winograd (`ConvolutionAlgorithm`) change what bf16 is worth:
    /// the probe's ratio (direct convolutions) is weighed by the network's Winograd share. The probe
    /// measures 1.93 on the Zen 5 this was written on; VGG16's share is 0.994, ResNet50's 0.37.
    func testWinogradShareWeighsTheRatio() {
        XCTAssertEqual(PrecisionDecision.networkRatio(2, winogradShare: 0), 2)
        XCTAssertEqual(PrecisionDecision.networkRatio(2, winogradShare: 1), 1)
        XCTAssertEqual(PrecisionDecision.networkRatio(1.93, winogradShare: 0.37), 1.93 * (0.185 + 0.63), accuracy: 1e-12)

        // VGG16 on Zen 5: 0.97 is inconclusive; the table's 2x weighs to 1.01, not faster: fp32.
        let vgg = PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx512CoreBF16, winogradShare: 0.994) { 1.93 }
        XCTAssertEqual(vgg.precision, .fp32)
        XCTAssertEqual(vgg.source, .table)
        XCTAssertEqual(vgg.probeRatio, 1.93)
        XCTAssertTrue(vgg.reason.contains("probe ratio 0.97 inconclusive, 99% of fp32's convolution work as Winograd: bf16 1.01x for this network"), vgg.reason)
        XCTAssertEqual(PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx512CoreBF16, winogradShare: 0.994) { nil }.precision, .fp32)
        // ResNet50 on Zen 5: 1.57, bf16.
        let r50 = PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx512CoreBF16, winogradShare: 0.37) { 1.93 }
        XCTAssertEqual(r50.precision, .bf16)
        XCTAssertEqual(r50.source, .probe)
        XCTAssertEqual(r50.reason, "probe: bf16 convolutions 1.93x fp32's speed (1.57x for this network, 37% of fp32's convolution work as Winograd)")
        // A CPU whose bf16 is far faster (AMX) keeps bf16 even for VGG16; one whose bf16 is slower keeps fp32.
        XCTAssertEqual(PrecisionDecision.decide(.auto, cpu: sapphire, isa: .avx512CoreBF16, winogradShare: 0.994) { 5 }.precision, .bf16)
        XCTAssertEqual(PrecisionDecision.decide(.auto, cpu: emeraldNoAMX, isa: .avx512CoreBF16, winogradShare: 0.37) { 0.7 }.precision, .fp32)
        // No Winograd: the reason is as before.
        XCTAssertEqual(PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx512CoreBF16, winogradShare: 0) { 1.93 }.reason, "probe: bf16 convolutions 1.93x fp32's speed")

        // --precision bf16 on a network that is slower in bf16 than as Winograd fp32 says so.
        XCTAssertEqual(PrecisionDecision.bf16Warning(cpu: zen5, probeRatio: 1.3, winogradShare: 1),
                       "--precision bf16: on this CPU (AuthenticAMD (family 26, model 2)) this network runs at 0.65x fp32's speed (35% slower, measured by the probe); proceeding in bf16")
        XCTAssertNil(PrecisionDecision.bf16Warning(cpu: zen5, probeRatio: 1.93, winogradShare: 0.37))
    }

    func testCPUInfoParsing() {
        let text = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        cpu family\t: 26
        model\t\t: 2
        model name\t: AMD EPYC
        flags\t\t: fpu avx512f avx512_bf16 avx512_vnni

        processor\t: 1
        vendor_id\t: GenuineIntel
        cpu family\t: 6
        """
        let cpu = CPUFeatures(cpuinfo: text)
        XCTAssertEqual(cpu, CPUFeatures(vendor: "AuthenticAMD", family: 26, model: 2, modelName: "AMD EPYC",
                                        flags: ["fpu", "avx512f", "avx512_bf16", "avx512_vnni"]))
        XCTAssertEqual(cpu.bf16Table.faster, true)
        XCTAssertEqual(CPUFeatures(cpuinfo: "").bf16Table.faster, false)
    }

    /// What oneDNN runs decides what can run: on AVX2 (Haswell to Zen 3, or `ONEDNN_MAX_CPU_ISA=AVX2`)
    /// oneDNN 2.6 has no bf16 convolutions, so `auto` is fp32 without probing, whatever /proc/cpuinfo
    /// says; without VNNI int8 weights are limited (`Int8WeightRule.pairs16`).
    func testEngineISADecidesWhatCanRun() {
        XCTAssertEqual(EngineISA.avx2.name, "AVX2")
        XCTAssertEqual(EngineISA.avx512CoreBF16.name, "AVX512_CORE_BF16")
        XCTAssertEqual(EngineISA.avx2VNNI.name, "AVX2_VNNI")
        XCTAssertEqual([EngineISA.avx2, .avx2VNNI, .avx512Core, .avx512CoreBF16].map(\.bf16Convolutions), [false, false, true, true])
        XCTAssertEqual([EngineISA.avx2, .avx2VNNI, .avx512Core, .avx512CoreBF16].map(\.vnni), [false, true, false, true])
        XCTAssertEqual([EngineISA.avx2, .avx2VNNI, .avx512Core, .avx512CoreBF16].map(\.int8WeightRule), [.pairs16, .full, .pairs16, .full])
        let d = PrecisionDecision.decide(.auto, cpu: zen5, isa: .avx2) { XCTFail("probed"); return 2 }
        XCTAssertEqual(d.precision, .fp32)
        XCTAssertEqual(d.source, .rule)
        XCTAssertEqual(d.reason, "oneDNN has no bf16 convolutions on this CPU (its instruction set here: AVX2; bf16 needs AVX-512), on AuthenticAMD (family 26, model 2)")
        XCTAssertTrue(PrecisionDecision.decide(.int8, cpu: zen5, isa: .avx512Core) { nil }.reason.contains("weights limited"))
        XCTAssertFalse(PrecisionDecision.decide(.int8, cpu: zen5, isa: .avx512CoreBF16) { nil }.reason.contains("limited"))
    }

    /// The real probe returns a finite positive ratio (its value depends on the CPU and its load).
    func testProbeMeasures() throws {
        try skipWithoutBF16()
        let r = try BF16Probe.ratio(runs: 2)
        print(String(format: "bf16 probe on %@: %.2f", CPUFeatures.current.name, r))
        XCTAssertTrue(r.isFinite && r > 0, "\(r)")
    }
}

/// Skips a test that compiles bf16 where oneDNN has none (`ONEDNN_MAX_CPU_ISA=AVX2`, or an AVX2-only CPU).
func skipWithoutBF16() throws {
    if let why = EngineISA.current.bf16Unavailable { throw XCTSkip(why) }
}
