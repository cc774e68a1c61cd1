"""``cdp-eval-protocol PROTOCOL.yaml [--resume]``: run a paired evaluation protocol on the stack.

Before anything moves, every model is loaded and checked against the task and the calibration
(required on the robot) against its age; any problem stops the protocol with the reason.
Then the runner starts the node graph (``launch/graph.yaml``, as ``cdp-graph``), and for every
trial in the protocol's interleaved order: restarts the policy node when the policy changes,
selects the trial's seed (sim_robot's ``next_seed`` parameter), brings the arm home through the
safety filter, hands over to the policy, stops on success / time limit / operator abort, labels
the outcome (automatic in simulation, the operator confirms on the robot) and appends the trial
to ``results.jsonl`` (fsynced). ``--resume`` skips the trials already there.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
from cdp_bringup.episodes import EpisodeConfig
from cdp_bringup.episodes_node import EpisodeRunner
from cdp_bringup.graph import NodeSpec, load_graph, resolve
from cdp_bringup.launcher import NodeGraph
from cdp_ros_common import names
from cdp_ros_common.conversions import time_to_sec
from cdp_ros_common.stack_client import StackError
from cdp_teleop.events import encode_event
from rclpy.executors import MultiThreadedExecutor
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from .protocol import Preflight, Protocol, ProtocolError, load_protocol, placement_text, preflight, software_versions
from .results import RESULTS_FILE, ResultsError, ResultsLog, read_results

POLICY_NODE = "policy_node"


def intervention_onsets(messages: list[str]) -> tuple[int, int]:
    """(interventions started, messages while intervening) from a trial's /safety/intervention messages.

    The filter publishes its reason set on change and every 0.5 s while it lasts, and "none" when it
    clears: an onset is a reason after "none" (or the trial's first message); the active messages
    measure how long it intervened (about 0.5 s each).
    """
    onsets, active, previous = 0, 0, "none"
    for m in messages:
        if m != "none":
            active += 1
            if previous == "none":
                onsets += 1
        previous = m
    return onsets, active


def intervention_reasons(messages: list[str]) -> dict[str, int]:
    """How often each kind of reason appeared: the filter's fixed set of kinds
    (:class:`safety_filter.reasons.Intervention`), never the text with its numbers."""
    from safety_filter.reasons import kind_of

    counts: dict[str, int] = {}
    for m in messages:
        if m == "none":
            continue
        for part in m.split("; "):
            kind = kind_of(part).value
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- the trial driver (ROS) ---------------------------------------------------------------------------
class Operator:
    """The person at the robot: lines typed on stdin, read by a background thread (never blocks ROS)."""

    def __init__(self, stream=None, out=print):
        self.lines: queue.Queue[str] = queue.Queue()
        self.out = out
        threading.Thread(target=self._read, args=(stream or sys.stdin,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            self.lines.put(line.strip().lower())
        self.lines.put("q")  # end of input: stop the protocol rather than guess

    def ask(self, prompt: str, choices: tuple[str, ...]) -> str:
        while True:
            self.out(prompt)
            answer = self.lines.get()
            if answer in choices:
                return answer
            self.out(f"  please answer one of {', '.join(repr(c) for c in choices)}")

    def poll(self) -> str | None:
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            return None


class ProtocolStopped(RuntimeError):
    """The operator stopped the protocol (results so far are kept; --resume continues)."""


class TrialNode(EpisodeRunner):
    """EpisodeRunner plus seed selection, interventions, chunk latency, recorder events and diagnostics times."""

    def __init__(self, protocol: Protocol):
        super().__init__(protocol.task, EpisodeConfig(home_jitter=protocol.home_jitter))
        self.protocol = protocol
        self.interventions: list[str] = []
        self.chunk_latencies: list[float] = []
        self._seen_stamps: set[float] = set()
        self.recorder_status: dict[str, Any] = {}
        self.create_subscription(String, names.SAFETY_INTERVENTION, lambda m: self.interventions.append(m.data), 100)
        self.create_subscription(String, names.RECORDER_STATUS, self._on_recorder, 10)
        self.event_pub = self.create_publisher(String, names.EPISODE_EVENT, 10)

    def _on_chunk(self, msg: JointTrajectory) -> None:
        super()._on_chunk(msg)
        stamp = time_to_sec(msg.header.stamp)
        if stamp not in self._seen_stamps:  # the policy re-sends its chunk as a heartbeat: time new ones only
            self._seen_stamps.add(stamp)
            self.chunk_latencies.append(self.now() - stamp)

    def _on_recorder(self, msg: String) -> None:
        try:
            self.recorder_status = json.loads(msg.data)
        except json.JSONDecodeError:
            pass

    def wait_for_stack(self, timeout_s: float = 60.0) -> None:
        services = [names.POLICY_ENABLE, self.stack.filter_parameters]
        if self.protocol.use_sim:
            services += [names.SIM_RESET_EPISODE, names.SIM_START_EPISODE, self.stack.sim_parameters]
        self.stack.wait_for(services, timeout_s)

    def wait_for_policy(self, model_path: str, since: float, timeout_s: float = 60.0) -> None:
        """Until the (re)started policy node reports ``model_path`` in diagnostics and serves enable."""
        t_end = time.monotonic() + timeout_s
        st = self.stack
        while not (
            st.diag_time.get(POLICY_NODE, -1.0) > since
            and st.diagnostics.get(POLICY_NODE, {}).get("model") == model_path
        ):
            st.guard()
            if time.monotonic() > t_end:
                raise StackError(f"policy node did not come up with {model_path} within {timeout_s} s")
            time.sleep(0.1)
        st.wait_for([names.POLICY_ENABLE], max(0.1, t_end - time.monotonic()))

    def event(self, name: str, **extra: Any) -> None:
        self.event_pub.publish(String(data=encode_event(name, self.now(), **extra)))

    def fresh_policy_diagnostics(self, since: float, timeout_s: float = 2.5) -> dict[str, str]:
        t_end = time.monotonic() + timeout_s
        while self.stack.diag_time.get(POLICY_NODE, -1.0) <= since and time.monotonic() < t_end:
            time.sleep(0.05)
        return dict(self.stack.diagnostics.get(POLICY_NODE, {}))

    def run_trial(
        self, trial: int, policy: str, seed: int, operator: Operator | None, log=print
    ) -> dict[str, Any] | None:
        """One trial; its record, or None when the operator discards it (it will run again)."""
        proto, st = self.protocol, self.stack
        started = datetime.now(timezone.utc).isoformat()
        st.enable_policy(False)
        params: dict[str, Any] = {}
        if proto.use_sim:
            params = st.reset_episode(seed)["params"]
        st.select_source("teleop")
        st.go_home(self.task.episode_start(seed, self.config.home_jitter)[1])
        if operator is not None:
            log(f"\ntrial {trial + 1}/{proto.trials}, policy {policy!r}, seed {seed}")
            log(f"  place the object: {placement_text(proto.task, seed)}")
            if operator.ask("  Enter 'g' when placed and clear to go, 'q' to stop the protocol:", ("g", "q")) == "q":
                raise ProtocolStopped("operator stopped the protocol before the trial")
        st.select_source("policy")
        if proto.use_sim:
            st.start_episode()
        if proto.record:
            self.event("start", task=proto.task, policy=policy, trial=trial, seed=seed, model=proto.policies[policy])
        limit = proto.time_limit_s or self.task.spec.time_limit_s
        self.success, self.chunks = False, 0
        self.interventions, self.chunk_latencies, self._seen_stamps = [], [], set()
        t0 = time.monotonic()
        st.enable_policy(True)
        tts, ended_by = None, "time_limit"
        try:
            while time.monotonic() - t0 < limit + self.config.grace_s:
                if proto.use_sim and self.success:
                    tts, ended_by = time.monotonic() - t0, "success"
                    break
                if operator is not None:
                    key = operator.poll()
                    if key == "s":
                        tts, ended_by = time.monotonic() - t0, "operator_success"
                        break
                    if key in ("a", "q"):
                        ended_by = "operator_abort"
                        break
                st.check_driver()
                time.sleep(0.01)
        finally:
            # Snapshot before handing back: the handover itself is reported as an intervention.
            interventions = list(self.interventions)
            st.enable_policy(False)
            st.select_source("teleop")
        t_end = time.monotonic()
        onsets, active = intervention_onsets(interventions)
        latencies = 1000 * np.asarray(self.chunk_latencies)
        if proto.use_sim:
            success, labelled_by = tts is not None, "simulation"
        else:
            label = operator.ask(
                f"  trial ended ({ended_by}). Outcome? 's' success, 'f' failure, "
                "'x' discard (re-run later), 'q' discard and stop:",
                ("s", "f", "x", "q"),
            )
            if label in ("x", "q"):
                if proto.record:
                    self.event("discard")
                if label == "q":
                    raise ProtocolStopped("operator stopped the protocol")
                return None
            success, labelled_by = label == "s", "operator"
            if not success:
                tts = None
        mcap = ""
        if proto.record:
            before = self.recorder_status.get("last", "")
            self.event("success" if success else "failure")
            self.event("stop")
            t_wait = time.monotonic() + 5.0
            while self.recorder_status.get("last", "") == before and time.monotonic() < t_wait:
                time.sleep(0.05)
            mcap = self.recorder_status.get("last", "")
        diag = self.fresh_policy_diagnostics(t_end)

        def num(key: str) -> float | None:
            try:
                return float(diag[key])
            except (KeyError, ValueError):
                return None

        return {
            "trial": trial,
            "policy": policy,
            "seed": seed,
            "params": params,
            "outcome": "success" if success else ("aborted" if ended_by == "operator_abort" else "failure"),
            "success": success,
            "ended_by": ended_by,
            "labelled_by": labelled_by,
            "final_error_mm": 1000 * self.tip_error if proto.use_sim and np.isfinite(self.tip_error) else None,
            "time_to_success_s": tts,
            "time_limit_s": limit,
            "duration_s": t_end - t0,
            "chunks": self.chunks,
            "policy_latency_p50_ms": num("latency_p50_ms"),
            "policy_latency_p99_ms": num("latency_p99_ms"),
            "obs_to_chunk_p50_ms": float(np.median(latencies)) if len(latencies) else None,
            "obs_to_chunk_p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
            "missed_deadlines": num("missed_deadlines"),
            "interventions": onsets,
            "intervention_messages": active,
            "intervention_reasons": intervention_reasons(interventions),
            # The simulator shares the CPU with the nodes: a loaded machine slows every policy alike.
            "load_avg_1min": os.getloadavg()[0],
            "mcap": mcap,
            "started_utc": started,
            "ended_utc": datetime.now(timezone.utc).isoformat(),
        }


# --- the protocol ------------------------------------------------------------------------------------
def graph_specs(protocol: Protocol, first_model: str, out: Path) -> list[NodeSpec]:
    given = {"use_sim": "true" if protocol.use_sim else "false", "model": first_model, **protocol.launch}
    if protocol.use_sim:
        given["task"] = protocol.task
    specs = resolve(load_graph(), given)
    if protocol.record:
        specs.append(
            NodeSpec(
                name="recorder_node",
                package="cdp_recorder",
                executable="recorder_node",
                module="cdp_recorder.node",
                required=False,
                start_delay_s=0.0,
                params_files=(),
                overrides={
                    "output_dir": str(out / "recordings"),
                    **({"calibration_files": protocol.calibration} if protocol.calibration else {}),
                },
            )
        )
    return specs


def run_protocol(
    protocol: Protocol, resume: bool = False, log: Callable[[str], None] = print, operator: Operator | None = None
) -> int:
    """Run (or continue) a protocol; 0 when every trial is recorded. Raises ProtocolError before motion."""
    pre: Preflight = preflight(protocol)  # models and calibration: nothing has started yet
    out = Path(protocol.output)
    if (out / RESULTS_FILE).is_file() and read_results(out / RESULTS_FILE) and not resume:
        raise ProtocolError(
            f"{out / RESULTS_FILE} already holds trials: pass --resume to continue them, or choose a new output folder"
        )
    results = ResultsLog(out, pre.protocol_hash)
    out.mkdir(parents=True, exist_ok=True)
    versions = software_versions()
    (out / "protocol.json").write_text(
        json.dumps(
            {
                "protocol_hash": pre.protocol_hash,
                "protocol": protocol.identity(),
                "output": protocol.output,
                "models": pre.models,
                "calibration": pre.calibration,
                "software": versions,
            },
            indent=2,
        )
    )
    done = results.done()
    todo = [(i, p) for i, p in protocol.schedule() if (i, p) not in done]
    log(
        f"protocol {protocol.name} ({pre.protocol_hash}): {len(protocol.schedule())} trials, "
        f"{len(done)} already recorded, {len(todo)} to run"
    )
    if not todo:
        return 0
    if not protocol.use_sim and operator is None:
        operator = Operator(out=log)

    current = protocol.policies[todo[0][1]]
    graph_log = open(out / "graph.log", "a")
    graph = NodeGraph(graph_specs(protocol, current, out), out=graph_log, die_with_parent=True)
    rclpy.init()
    node = TrialNode(protocol)

    def guard() -> None:
        failed = graph.check()
        if failed:
            raise StackError(f"required node {failed[0]} exited with code {failed[1]} (see {out / 'graph.log'})")

    node.stack.guard = guard
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    code = 1
    try:
        t_start = time.monotonic()
        graph.start()
        log(f"stack starting ({', '.join(s.name for s in graph.specs)}); node output in {out / 'graph.log'}")
        node.wait_for_stack(120.0)
        node.wait_for_policy(current, t_start - 1.0)
        node.stack.select_source("teleop")
        for trial, policy in todo:
            path = protocol.policies[policy]
            if path != current:
                node.stack.enable_policy(False)
                t_switch = time.monotonic()
                graph.restart_node(POLICY_NODE, {"model_path": path})
                node.wait_for_policy(path, t_switch)
                current = path
            seed = protocol.seeds[trial]
            row = node.run_trial(trial, policy, seed, operator, log)
            if row is None:
                log(f"trial {trial + 1} of {policy!r} discarded; it runs again on --resume")
                continue
            row.update(
                {
                    "model_sha256": pre.models[policy]["sha256"],
                    "model_path": path,
                    "calibration": pre.calibration,
                    "software": versions,
                }
            )
            results.append(row)
            log(
                f"[{len(results.rows)}/{len(protocol.schedule())}] trial {trial + 1} {policy} seed {seed}: "
                f"{row['outcome']}"
                + (f", final error {row['final_error_mm']:.1f} mm" if row["final_error_mm"] is not None else "")
                + (f", {row['time_to_success_s']:.2f} s" if row["time_to_success_s"] is not None else "")
                + f", {row['interventions']} interventions, policy p50 {row['policy_latency_p50_ms']} ms"
            )
        code = 0
    except ProtocolStopped as exc:
        log(f"stopped: {exc}. Results so far are in {results.path}; --resume continues.")
        code = 3
    except StackError as exc:
        log(f"cdp-eval-protocol: {exc}\n(the arm holds; results so far are in {results.path}; --resume continues)")
        code = 1
    finally:
        try:
            if graph.check() is None and rclpy.ok():
                node.stack.enable_policy(False)
        except Exception:
            pass
        executor.shutdown()
        spin.join(timeout=2.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        graph.stop()
        graph_log.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp-eval-protocol", description=__doc__.splitlines()[0])
    parser.add_argument("protocol", help="protocol YAML")
    parser.add_argument("--resume", action="store_true", help="continue a protocol whose output folder holds trials")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    args = parser.parse_args(argv)
    # SIGTERM ends like Ctrl-C: the finally blocks stop the graph upstream first (arm holding).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        protocol = load_protocol(args.protocol)
        code = run_protocol(protocol, args.resume, log=lambda s: print(s, flush=True))
    except (ProtocolError, ResultsError) as exc:
        print(f"cdp-eval-protocol: {exc}\nNothing was started; the arm did not move.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cdp-eval-protocol: interrupted; --resume continues from the next unrecorded trial", file=sys.stderr)
        return 130
    if code == 0 and not args.no_report:
        from .report import write_report

        md = write_report(Path(protocol.output))
        print(f"report: {md}")
    return code


if __name__ == "__main__":
    sys.exit(main())
