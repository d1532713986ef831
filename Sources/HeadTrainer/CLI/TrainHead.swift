import ArgumentParser
import Foundation

@main
struct TrainHead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-head",
        abstract: "Train softmax heads on features cached by `extract` (not built yet).")

    func run() throws {
        FileHandle.standardError.write(Data("train-head is not built yet: it arrives with the head-trainer issue.\n".utf8))
        throw ExitCode.failure
    }
}
