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
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .protocol import Preflight, Protocol, ProtocolError, load_protocol, placement_text, preflight, software_versions
from .results import RESULTS_FILE, ResultsError, ResultsLog, read_results

POLICY_NODE = "policy_node"


# --- the node graph, with the policy node restartable ------------------------------------------------
def _die_with_parent() -> None:
    # A killed runner must not leave a policy driving the arm unsupervised (nor a simulator holding
    # its address): every node gets SIGINT when the runner's process dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def make_graph_class():
    from cdp_bringup.launcher import NodeGraph, RunningNode, _signal

    class EvalGraph(NodeGraph):
        """cdp-graph's NodeGraph with nodes that die with the runner and a restartable policy node."""

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._restarting: str | None = None

        def _spawn(self, spec: Any) -> RunningNode:
            proc = subprocess.Popen(self.command(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True, preexec_fn=_die_with_parent)
            reader = threading.Thread(target=self._pump, args=(spec.name, proc.stdout), daemon=True)
            reader.start()
            self._say("cdp-eval", f"started {spec.name} (pid {proc.pid}): {' '.join(self.command(spec))}")
            return RunningNode(spec, proc, reader)

        def start(self, stop_event: threading.Event | None = None) -> None:
            for spec in self.specs:
                t_end = time.monotonic() + spec.start_delay_s
                while time.monotonic() < t_end:
                    if self.check() is not None or (stop_event is not None and stop_event.is_set()):
                        return
                    time.sleep(0.05)
                self.nodes.append(self._spawn(spec))

        def check(self) -> tuple[str, int] | None:
            if self.failed is None:
                for n in self.nodes:
                    code = n.process.poll()
                    if code is not None and n.spec.required and n.spec.name != self._restarting:
                        self.failed = (n.spec.name, code)
                        break
            return self.failed

        def restart_node(self, name: str, overrides: dict[str, str], timeout_s: float = 5.0) -> None:
            """Stop node ``name`` (SIGINT, then harder) and start it again with ``overrides`` added."""
            idx = next(i for i, n in enumerate(self.nodes) if n.spec.name == name)
            old = self.nodes[idx]
            self._restarting = name
            try:
                self._say("cdp-eval", f"restarting {name} with {overrides}")
                for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
                    _signal(old.process, sig)
                    try:
                        old.process.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                old.reader.join(timeout=1.0)
                spec = replace(old.spec, overrides={**old.spec.overrides, **overrides})
                self.specs[self.specs.index(old.spec)] = spec
                self.nodes[idx] = self._spawn(spec)
            finally:
                self._restarting = None

    return EvalGraph


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


def make_trial_node_class():
    from cdp_bringup.episodes import EpisodeConfig, home_configuration
    from cdp_bringup.episodes_node import EpisodeRunner, StackError
    from cdp_ros_common import names
    from cdp_ros_common.conversions import time_to_sec
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    class TrialNode(EpisodeRunner):
        """EpisodeRunner plus seed selection, interventions, chunk latency, recorder events and diagnostics times."""

        def __init__(self, protocol: Protocol):
            super().__init__(protocol.task, EpisodeConfig(home_jitter=protocol.home_jitter))
            self.protocol = protocol
            self.interventions: list[str] = []
            self.chunk_latencies: list[float] = []
            self._seen_stamps: set[float] = set()
            self.recorder_status: dict[str, Any] = {}
            self.diag_time: dict[str, float] = {}
            self.guard: Callable[[], None] = lambda: None
            self.sim_param_cli = self.create_client(SetParameters, "/sim_robot/set_parameters")
            self.create_subscription(String, names.SAFETY_INTERVENTION, lambda m: self.interventions.append(m.data), 100)
            self.create_subscription(String, names.RECORDER_STATUS, self._on_recorder, 10)
            self.event_pub = self.create_publisher(String, names.EPISODE_EVENT, 10)

        def _on_chunk(self, msg: JointTrajectory) -> None:
            super()._on_chunk(msg)
            stamp = time_to_sec(msg.header.stamp)
            if stamp not in self._seen_stamps:  # the policy re-sends its chunk as a heartbeat: time new ones only
                self._seen_stamps.add(stamp)
                self.chunk_latencies.append(self.now() - stamp)

        def _on_diag(self, msg: DiagnosticArray) -> None:
            super()._on_diag(msg)
            for st in msg.status:
                self.diag_time[st.name] = time.monotonic()

        def _on_recorder(self, msg: String) -> None:
            try:
                self.recorder_status = json.loads(msg.data)
            except json.JSONDecodeError:
                pass

        def check_driver(self) -> None:
            super().check_driver()
            self.guard()

        def wait_for_stack(self, timeout_s: float = 60.0) -> None:
            t_end = time.monotonic() + timeout_s
            while self.q is None:
                self.guard()
                if time.monotonic() > t_end:
                    raise StackError(f"no {names.JOINT_STATES} within {timeout_s} s: is the driver running?")
                time.sleep(0.05)
            clients = [self.enable_cli, self.param_cli]
            if self.protocol.use_sim:
                clients += [self.reset_cli, self.start_cli, self.sim_param_cli]
            for cli in clients:
                if not cli.wait_for_service(timeout_sec=max(0.1, t_end - time.monotonic())):
                    raise StackError(f"service {cli.srv_name} is not available")

        def wait_for_policy(self, model_path: str, since: float, timeout_s: float = 60.0) -> None:
            """Until the (re)started policy node reports ``model_path`` in diagnostics and serves enable."""
            t_end = time.monotonic() + timeout_s
            while not (self.diag_time.get(POLICY_NODE, -1.0) > since
                       and self.diagnostics.get(POLICY_NODE, {}).get("model") == model_path):
                self.guard()
                if time.monotonic() > t_end:
                    raise StackError(f"policy node did not come up with {model_path} within {timeout_s} s")
                time.sleep(0.1)
            if not self.enable_cli.wait_for_service(timeout_sec=max(0.1, t_end - time.monotonic())):
                raise StackError(f"service {self.enable_cli.srv_name} is not available")

        def set_next_seed(self, seed: int) -> None:
            p = ParameterMsg(name="next_seed", value=ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                                     integer_value=int(seed)))
            res = self._call(self.sim_param_cli, SetParameters.Request(parameters=[p]))
            if not res.results or not res.results[0].successful:
                raise StackError(f"sim_robot refused next_seed={seed}: "
                                 f"{res.results[0].reason if res.results else 'no result'} (does this cdp_sim "
                                 "support the next_seed parameter?)")

        def event(self, name: str, **extra: Any) -> None:
            from cdp_teleop.events import encode_event

            self.event_pub.publish(String(data=encode_event(name, self.now(), **extra)))

        def fresh_policy_diagnostics(self, since: float, timeout_s: float = 2.5) -> dict[str, str]:
            t_end = time.monotonic() + timeout_s
            while self.diag_time.get(POLICY_NODE, -1.0) <= since and time.monotonic() < t_end:
                time.sleep(0.05)
            return dict(self.diagnostics.get(POLICY_NODE, {}))

        def run_trial(self, trial: int, policy: str, seed: int, operator: Operator | None, log=print
                      ) -> dict[str, Any] | None:
            """One trial; its record, or None when the operator discards it (it will run again)."""
            proto = self.protocol
            started = datetime.now(timezone.utc).isoformat()
            self.enable_policy(False)
            params: dict[str, Any] = {}
            if proto.use_sim:
                self.set_next_seed(seed)
                reset = json.loads(self._call(self.reset_cli, Trigger.Request()).message)
                if int(reset["seed"]) != seed:
                    raise StackError(f"sim_robot drew seed {reset['seed']} instead of the requested {seed}: "
                                     "it does not honour next_seed; trials would not pair")
                params = reset["params"]
            self.select_source("teleop")
            self.go_home(home_configuration(self.task, seed, self.config.home_jitter))
            if operator is not None:
                log(f"\ntrial {trial + 1}/{proto.trials}, policy {policy!r}, seed {seed}")
                log(f"  place the object: {placement_text(proto.task, seed)}")
                if operator.ask("  Enter 'g' when placed and clear to go, 'q' to stop the protocol:", ("g", "q")) == "q":
                    raise ProtocolStopped("operator stopped the protocol before the trial")
            self.select_source("policy")
            if proto.use_sim:
                self._call(self.start_cli, Trigger.Request())
            if proto.record:
                self.event("start", task=proto.task, policy=policy, trial=trial, seed=seed,
                           model=proto.policies[policy])
            limit = proto.time_limit_s or self.task.spec.time_limit_s
            self.success, self.chunks = False, 0
            self.interventions, self.chunk_latencies, self._seen_stamps = [], [], set()
            t0 = time.monotonic()
            self.enable_policy(True)
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
                    self.check_driver()
                    time.sleep(0.01)
            finally:
                # Snapshot before handing back: the handover itself is reported as an intervention.
                interventions = list(self.interventions)
                self.enable_policy(False)
                self.select_source("teleop")
            t_end = time.monotonic()
            onsets, active = intervention_onsets(interventions)
            latencies = 1000 * np.asarray(self.chunk_latencies)
            if proto.use_sim:
                success, labelled_by = tts is not None, "simulation"
            else:
                label = operator.ask(f"  trial ended ({ended_by}). Outcome? 's' success, 'f' failure, "
                                     "'x' discard (re-run later), 'q' discard and stop:", ("s", "f", "x", "q"))
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
                "trial": trial, "policy": policy, "seed": seed, "params": params,
                "outcome": "success" if success else ("aborted" if ended_by == "operator_abort" else "failure"),
                "success": success, "ended_by": ended_by, "labelled_by": labelled_by,
                "final_error_mm": 1000 * self.tip_error if proto.use_sim and np.isfinite(self.tip_error) else None,
                "time_to_success_s": tts, "time_limit_s": limit, "duration_s": t_end - t0,
                "chunks": self.chunks,
                "policy_latency_p50_ms": num("latency_p50_ms"), "policy_latency_p99_ms": num("latency_p99_ms"),
                "obs_to_chunk_p50_ms": float(np.median(latencies)) if len(latencies) else None,
                "obs_to_chunk_p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
                "missed_deadlines": num("missed_deadlines"),
                "interventions": onsets, "intervention_messages": active,
                "intervention_reasons": intervention_reasons(interventions),
                # The simulator shares the CPU with the nodes: a loaded machine slows every policy alike.
                "load_avg_1min": os.getloadavg()[0],
                "mcap": mcap, "started_utc": started, "ended_utc": datetime.now(timezone.utc).isoformat(),
            }

    return TrialNode, StackError


# --- the protocol ------------------------------------------------------------------------------------
def graph_specs(protocol: Protocol, first_model: str, out: Path) -> list[Any]:
    from cdp_bringup.graph import NodeSpec, load_graph, resolve

    given = {"use_sim": "true" if protocol.use_sim else "false", "model": first_model, **protocol.launch}
    if protocol.use_sim:
        given["task"] = protocol.task
    specs = resolve(load_graph(), given)
    if protocol.record:
        specs.append(NodeSpec(name="recorder_node", package="cdp_recorder", executable="recorder_node",
                              module="cdp_recorder.node", required=False, start_delay_s=0.0, params_files=(),
                              overrides={"output_dir": str(out / "recordings"),
                                         **({"calibration_files": protocol.calibration} if protocol.calibration
                                            else {})}))
    return specs


def run_protocol(protocol: Protocol, resume: bool = False, log: Callable[[str], None] = print,
                 operator: Operator | None = None) -> int:
    """Run (or continue) a protocol; 0 when every trial is recorded. Raises ProtocolError before motion."""
    pre: Preflight = preflight(protocol)  # models and calibration: nothing has started yet
    out = Path(protocol.output)
    if (out / RESULTS_FILE).is_file() and read_results(out / RESULTS_FILE) and not resume:
        raise ProtocolError(f"{out / RESULTS_FILE} already holds trials: pass --resume to continue them, "
                            "or choose a new output folder")
    results = ResultsLog(out, pre.protocol_hash)
    out.mkdir(parents=True, exist_ok=True)
    versions = software_versions()
    (out / "protocol.json").write_text(json.dumps(
        {"protocol_hash": pre.protocol_hash, "protocol": protocol.identity(), "output": protocol.output,
         "models": pre.models, "calibration": pre.calibration, "software": versions}, indent=2))
    done = results.done()
    todo = [(i, p) for i, p in protocol.schedule() if (i, p) not in done]
    log(f"protocol {protocol.name} ({pre.protocol_hash}): {len(protocol.schedule())} trials, "
        f"{len(done)} already recorded, {len(todo)} to run")
    if not todo:
        return 0
    if not protocol.use_sim and operator is None:
        operator = Operator(out=log)

    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    EvalGraph = make_graph_class()
    TrialNode, StackError = make_trial_node_class()
    current = protocol.policies[todo[0][1]]
    graph_log = open(out / "graph.log", "a")
    graph = EvalGraph(graph_specs(protocol, current, out), out=graph_log)
    rclpy.init()
    node = TrialNode(protocol)

    def guard() -> None:
        failed = graph.check()
        if failed:
            raise StackError(f"required node {failed[0]} exited with code {failed[1]} (see {out / 'graph.log'})")

    node.guard = guard
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
        node.select_source("teleop")
        for n, (trial, policy) in enumerate(todo):
            path = protocol.policies[policy]
            if path != current:
                node.enable_policy(False)
                t_switch = time.monotonic()
                graph.restart_node(POLICY_NODE, {"model_path": path})
                node.wait_for_policy(path, t_switch)
                current = path
            seed = protocol.seeds[trial]
            row = node.run_trial(trial, policy, seed, operator, log)
            if row is None:
                log(f"trial {trial + 1} of {policy!r} discarded; it runs again on --resume")
                continue
            row.update({"model_sha256": pre.models[policy]["sha256"], "model_path": path,
                        "calibration": pre.calibration, "software": versions})
            results.append(row)
            log(f"[{len(results.rows)}/{len(protocol.schedule())}] trial {trial + 1} {policy} seed {seed}: "
                f"{row['outcome']}" + (f", final error {row['final_error_mm']:.1f} mm" if row["final_error_mm"]
                                       is not None else "")
                + (f", {row['time_to_success_s']:.2f} s" if row["time_to_success_s"] is not None else "")
                + f", {row['interventions']} interventions, policy p50 {row['policy_latency_p50_ms']} ms")
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
                node.enable_policy(False)
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
