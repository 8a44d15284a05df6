import DipvizTensor
import DipvizVisualize
import Foundation

/// Job files that build a gallery on a cluster: one task per cost-balanced shard, each
/// writing into its own folder under the work folder, then one merge step that copies the
/// shards' results into the site and writes the pages. Paths are kept as the user gave them
/// (relative to the folder the files are submitted from), so the files can be committed and
/// moved with the project.
public struct ClusterJobs: Sendable {
    /// The gallery command's arguments as given: spec, site, work folder, budget.
    public var spec: String
    public var output: String
    public var work: String
    public var budget: String
    /// The plan's estimated seconds of each shard on `cpus` cores.
    public var shardSeconds: [Double]
    public var resultCount: Int
    public var cpus: Int
    /// Kubernetes: pods running at once (default: all shards).
    public var parallelism: Int?
    /// Kubernetes: the container image holding dipviz.
    public var image = "dipviz:latest"
    /// Kubernetes: the claim of the shared volume mounted at the working directory.
    public var volumeClaim = "dipviz-gallery"
    public var title = ""

    public init(spec: String, output: String, work: String, budget: String, shardSeconds: [Double], resultCount: Int, cpus: Int) {
        self.spec = spec; self.output = output; self.work = work; self.budget = budget
        self.shardSeconds = shardSeconds; self.resultCount = resultCount; self.cpus = cpus
    }

    public var shards: Int { shardSeconds.count }

    /// A shard's time limit in minutes: twice the costliest shard's estimate plus ten minutes
    /// for loading and a loaded node (an estimate is not a promise; a killed task resumes from
    /// its checkpoints when resubmitted).
    public var shardMinutes: Int { Int(((shardSeconds.max() ?? 0) * 2 / 60).rounded(.up)) + 10 }

    /// The merge step copies results and writes pages: about a tenth of a second per result.
    public var mergeMinutes: Int { 10 + resultCount / 600 }

    static func clock(_ minutes: Int) -> String { String(format: "%d:%02d:00", minutes / 60, minutes % 60) }

    var galleryArguments: [String] { ["gallery", spec, "--out", output, "--work", work, "--budget", budget] }

    var shardCommand: [String] { galleryArguments + ["--shard", "auto", "--shards", String(shards)] }
    var mergeCommand: [String] { galleryArguments + ["--merge-shards", "--render-only"] }

    func quoted(_ arguments: [String]) -> String { arguments.map(Shell.quote).joined(separator: " ") }

    /// `slurm/shards.sbatch`, `slurm/merge.sbatch` and `slurm/submit.sh`.
    public func slurm() -> [(name: String, text: String)] {
        let logs = (work as NSString).appendingPathComponent("slurm")
        let estimate = String(format: "%.1f", (shardSeconds.max() ?? 0) / 60)
        let shardsScript = """
        #!/bin/bash
        #SBATCH --job-name=dipviz-gallery
        #SBATCH --array=0-\(shards - 1)
        #SBATCH --cpus-per-task=\(cpus)
        #SBATCH --ntasks=1
        #SBATCH --time=\(ClusterJobs.clock(shardMinutes))
        #SBATCH --output=\(logs)/shard-%a.log
        # \(title.isEmpty ? "A dipviz gallery" : title): \(resultCount) results in \(shards) cost-balanced shards,
        # the costliest estimated at \(estimate) min on \(cpus) CPUs. Array task I computes shard I+1
        # into its own folder (\(work)/shards/); `sbatch --array=I` reruns one, resuming it.
        # Submit with submit.sh beside this file, from the folder the paths below are relative to.
        set -euo pipefail
        exec "${DIPVIZ:-dipviz}" \(quoted(shardCommand))

        """
        let mergeScript = """
        #!/bin/bash
        #SBATCH --job-name=dipviz-gallery-merge
        #SBATCH --cpus-per-task=1
        #SBATCH --ntasks=1
        #SBATCH --time=\(ClusterJobs.clock(mergeMinutes))
        #SBATCH --output=\(logs)/merge.log
        # Runs once every shard succeeded (--dependency=afterok): copies the shards' results into
        # \(output) and writes the site; \(work)/status.json tells what was merged.
        set -euo pipefail
        exec "${DIPVIZ:-dipviz}" \(quoted(mergeCommand))

        """
        let submit = """
        #!/bin/sh
        # Submits the shards as one array job and the merge as a job that waits for all of them.
        # Run from the folder the gallery paths are relative to; DIPVIZ names the dipviz binary
        # (default: dipviz on the PATH of the compute nodes).
        set -eu
        mkdir -p \(Shell.quote(logs))
        shards=$(sbatch --parsable \(Shell.quote(logs + "/shards.sbatch")))
        shards=${shards%%;*}
        merge=$(sbatch --parsable --dependency=afterok:"$shards" \(Shell.quote(logs + "/merge.sbatch")))
        echo "shards: job $shards (\(shards) array tasks); merge: job ${merge%%;*}"

        """
        return [("shards.sbatch", shardsScript), ("merge.sbatch", mergeScript), ("submit.sh", submit)]
    }

    /// The Kubernetes objects as values (for checks) in the order they are applied.
    public func kubernetesObjects() -> (volume: [String: Any], shards: [String: Any], merge: [String: Any]) {
        let mount: [[String: Any]] = [["name": "workspace", "mountPath": "/workspace"]]
        let volumes: [[String: Any]] = [["name": "workspace", "persistentVolumeClaim": ["claimName": volumeClaim]]]
        let labels = ["app.kubernetes.io/name": "dipviz-gallery"]
        func container(_ name: String, _ command: [String], cpus: Int) -> [String: Any] {
            ["name": name, "image": image, "workingDir": "/workspace", "command": ["dipviz"] + command,
             "resources": ["requests": ["cpu": String(cpus)], "limits": ["cpu": String(cpus)]], "volumeMounts": mount]
        }
        let running = Swift.min(parallelism ?? shards, shards)
        let waves = (shards + running - 1) / running
        let shardsJob: [String: Any] = [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": ["name": "dipviz-gallery-shards", "labels": labels],
            "spec": [
                "completionMode": "Indexed", "completions": shards, "parallelism": running,
                "backoffLimit": 2 * shards, "activeDeadlineSeconds": 60 * shardMinutes * waves,
                "template": ["metadata": ["labels": labels],
                             "spec": ["restartPolicy": "Never", "containers": [container("shard", shardCommand, cpus: cpus)], "volumes": volumes]],
            ] as [String: Any],
        ]
        let mergeJob: [String: Any] = [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": ["name": "dipviz-gallery-merge", "labels": labels],
            "spec": [
                "completions": 1, "parallelism": 1, "backoffLimit": 2, "activeDeadlineSeconds": 60 * mergeMinutes,
                "template": ["metadata": ["labels": labels],
                             "spec": ["restartPolicy": "Never", "containers": [container("merge", mergeCommand, cpus: 1)], "volumes": volumes]],
            ] as [String: Any],
        ]
        let volume: [String: Any] = [
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": ["name": volumeClaim, "labels": labels],
            "spec": ["accessModes": ["ReadWriteMany"], "resources": ["requests": ["storage": "\(Swift.max(1, resultCount / 500 + 1))Gi"]]],
        ]
        return (volume, shardsJob, mergeJob)
    }

    /// `k8s/volume.yaml`, `k8s/shards-job.yaml`, `k8s/merge-job.yaml` and `k8s/submit.sh`.
    public func kubernetes() -> [(name: String, text: String)] {
        let objects = kubernetesObjects()
        let header = "# \(title.isEmpty ? "A dipviz gallery" : title): \(resultCount) results in \(shards) cost-balanced shards.\n"
        let deadline = 60 * shardMinutes * ((shards + Swift.min(parallelism ?? shards, shards) - 1) / Swift.min(parallelism ?? shards, shards))
        let dir = (work as NSString).appendingPathComponent("k8s")
        let submit = """
        #!/bin/sh
        # The volume holds the working directory: the spec, models and photos at the paths the
        # commands name (copy them in first), and the site and work folder the jobs write.
        # The shards run as an Indexed Job (JOB_COMPLETION_INDEX picks the shard); the merge
        # starts once every index has succeeded.
        set -eu
        kubectl apply -f \(Shell.quote(dir + "/volume.yaml"))
        kubectl apply -f \(Shell.quote(dir + "/shards-job.yaml"))
        kubectl wait --for=condition=complete --timeout=\(deadline)s job/dipviz-gallery-shards
        kubectl apply -f \(Shell.quote(dir + "/merge-job.yaml"))
        kubectl wait --for=condition=complete --timeout=\(60 * mergeMinutes)s job/dipviz-gallery-merge

        """
        return [("volume.yaml", header + YAML.document(objects.volume)),
                ("shards-job.yaml", header + YAML.document(objects.shards)),
                ("merge-job.yaml", header + YAML.document(objects.merge)),
                ("submit.sh", submit)]
    }

    /// Writes `files` into `directory` (atomically, scripts executable); returns their paths.
    public static func write(_ files: [(name: String, text: String)], into directory: String) throws -> [String] {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw GalleryError.experiment("cannot create \(directory): \(FileErrors.describe(error))")
        }
        return try files.map { file in
            let path = (directory as NSString).appendingPathComponent(file.name)
            try AtomicFile.write(Data(file.text.utf8), to: path)
            if file.name.hasSuffix(".sh") || file.name.hasSuffix(".sbatch") { chmod(path, 0o755) }
            return path
        }
    }
}

/// Block-style YAML for the values Kubernetes manifests hold (objects, lists, strings,
/// integers, booleans), with keys in a fixed order (apiVersion, kind, metadata, spec first,
/// then alphabetical) and every string that could read as something else quoted.
enum YAML {
    static let leading = ["apiVersion", "kind", "metadata", "name", "spec"]

    static func document(_ value: [String: Any]) -> String { mapping(value, indent: 0) }

    static func orderedKeys(_ d: [String: Any]) -> [String] {
        let first = leading.filter { d[$0] != nil }
        return first + d.keys.filter { !leading.contains($0) }.sorted()
    }

    static func scalar(_ v: Any) -> String? {
        switch v {
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let s as String: return string(s)
        default: return nil
        }
    }

    static func string(_ s: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./".unicodeScalars)
        let reserved = ["true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"]
        // Digits first could read as a number, a time or a version; a lone dash as a list item.
        let looksNumeric = Double(s) != nil || s == "-" || s.first.map { $0.isNumber || $0 == "." } ?? true
        if !s.isEmpty, s.unicodeScalars.allSatisfy({ plain.contains($0) }), !looksNumeric, !reserved.contains(s.lowercased()) { return s }
        // JSON strings are YAML double-quoted strings.
        let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    static func mapping(_ d: [String: Any], indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var out = ""
        for key in orderedKeys(d) {
            let v = d[key]!
            if let s = scalar(v) { out += "\(pad)\(key): \(s)\n"; continue }
            if let m = v as? [String: Any] { out += "\(pad)\(key):\n" + mapping(m, indent: indent + 2); continue }
            if let l = v as? [Any] { out += "\(pad)\(key):\n" + list(l, indent: indent + 2) }
        }
        return out
    }

    static func list(_ l: [Any], indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var out = ""
        for item in l {
            if let s = scalar(item) { out += "\(pad)- \(s)\n"; continue }
            if let m = item as? [String: Any] {
                // The first key shares the dash's line; the rest align under it.
                let body = mapping(m, indent: indent + 2)
                out += pad + "- " + body.dropFirst(indent + 2)
            }
        }
        return out
    }
}
