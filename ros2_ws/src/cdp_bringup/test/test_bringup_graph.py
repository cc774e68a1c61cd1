"""Node graph resolution (shared by ros2 launch and cdp-graph) and the cdp-graph process manager."""

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cdp_bringup.episodes import EpisodeResult, summarize
from cdp_bringup.graph import GraphError, load_graph, parse_launch_arguments, resolve
from cdp_bringup.launcher import NodeGraph
from cdp_ros_common.trajectories import homing_trajectory

HERE = Path(__file__).parent


def test_default_graph_resolves_for_sim_and_robot():
    graph = load_graph()
    sim = resolve(graph, {"use_sim": "true"})
    assert [s.name for s in sim] == ["sim_robot", "franka_driver", "safety_filter", "policy_node"]
    driver = next(s for s in sim if s.name == "franka_driver")
    assert driver.overrides["robot_ip"] == "127.0.0.1" and driver.required
    assert any(f.endswith("config/sim.yaml") for f in driver.params_files)
    robot = resolve(graph, {"use_sim": "false", "robot_ip": "172.16.0.2", "model": "m.onnx"})
    assert "sim_robot" not in [s.name for s in robot]
    assert not any(f.endswith("config/sim.yaml") for f in robot[0].params_files)
    policy = next(s for s in robot if s.name == "policy_node")
    assert policy.overrides["model_path"] == str(Path("m.onnx").resolve())  # absolute for every node
    assert "-p" in policy.ros_args() and f"model_path:={Path('m.onnx').resolve()}" in policy.ros_args()


def test_an_image_policy_gets_its_simulated_cameras_from_its_metadata(tmp_path):
    """The graph reads the model's sidecar: cameras named -> agentview_camera at its size and rate."""
    import json

    graph = load_graph()
    model = tmp_path / "img.onnx"
    model.write_bytes(b"")
    meta = {"cameras": ["agentview"], "image_size": [64, 80], "rate_hz": 10.0}
    model.with_suffix(".json").write_text(json.dumps(meta))
    sim = {s.name: s for s in resolve(graph, {"use_sim": "true", "model": str(model), "task": "peg_insert"})}
    assert list(sim) == ["sim_robot", "franka_driver", "safety_filter", "agentview_camera", "policy_node"]
    cam = sim["agentview_camera"].parameters()
    assert cam["cameras"] == ["agentview"] and cam["image_size"] == [64, 80] and cam["rate_hz"] == 10.0
    assert cam["task"] == "peg_insert" and sim["agentview_camera"].required
    assert "truth_topic" not in cam  # ground truth on /perception/object_pose (the default)
    both = {s.name: s for s in resolve(graph, {"model": str(model), "use_perception": "true"})}
    assert both["agentview_camera"].parameters()["truth_topic"] == "/sim/object_pose"  # where sim_robot moved it
    # on the robot a camera driver publishes the frames; low-dim models get no camera
    assert "agentview_camera" not in [s.name for s in resolve(graph, {"use_sim": "false", "model": str(model)})]
    assert "agentview_camera" not in [s.name for s in resolve(graph, {"use_sim": "true"})]
    with pytest.raises(GraphError, match="come from the model's metadata"):
        resolve(graph, {"model_cameras": "true"})
    model.with_suffix(".json").write_text("{not json")
    with pytest.raises(GraphError, match="sidecar .* is unreadable"):
        resolve(graph, {"model": str(model)})
    model.with_suffix(".json").write_text(json.dumps({"cameras": ["agentview"]}))
    with pytest.raises(GraphError, match="no image_size"):
        resolve(graph, {"model": str(model)})


def test_perception_graph_for_sim_and_robot():
    graph = load_graph()
    base = [s.name for s in resolve(graph, {"use_sim": "true", "task": "peg_insert"})]
    assert "camera_node" not in base and "perception_node" not in base  # ground truth unless asked
    sim = resolve(graph, {"use_sim": "true", "use_perception": "true", "task": "peg_insert", "object_plane_z": "0.06"})
    by = {s.name: s for s in sim}
    assert [s.name for s in sim] == [
        "sim_robot",
        "franka_driver",
        "safety_filter",
        "camera_node",
        "perception_node",
        "policy_node",
    ]
    files = [Path(f).name for f in by["camera_node"].params_files]
    assert files == ["stack.yaml", "sim.yaml", "perception.yaml", "perception_sim.yaml"]  # sim overrides live
    assert by["camera_node"].required and by["perception_node"].required
    assert by["perception_node"].overrides["calibration_file"] == str(
        Path("calibration/sim_eye_to_hand.yaml").resolve()
    )
    assert by["perception_node"].typed_overrides()["plane_z"] == 0.06
    assert by["camera_node"].overrides["task"] == by["sim_robot"].overrides["task"] == "peg_insert"
    robot = resolve(graph, {"use_sim": "false", "use_perception": "true"})
    by = {s.name: s for s in robot}
    assert [Path(f).name for f in by["camera_node"].params_files] == ["stack.yaml", "perception.yaml"]
    assert "plane_z" not in by["perception_node"].overrides  # no default: free 6-DOF unless given
    # ros2 launch passes every declared argument, unset ones as "": still nothing set
    assert (
        "plane_z"
        not in {s.name: s for s in resolve(graph, {"use_perception": "true", "object_plane_z": ""})}[
            "perception_node"
        ].overrides
    )


def test_graph_conditions():
    from cdp_bringup.graph import condition_holds

    args = {"a": "true", "b": "false"}
    assert condition_holds("a", args, "t") and condition_holds("not b", args, "t")
    assert condition_holds("a and not b", args, "t") and not condition_holds("a and b", args, "t")
    with pytest.raises(GraphError, match="names 'c'"):
        condition_holds("a and c", args, "t")
    with pytest.raises(GraphError, match="cannot read condition"):
        condition_holds("a or b", args, "t")


def test_bad_launch_arguments_are_named():
    graph = load_graph()
    with pytest.raises(GraphError, match="unknown launch argument.*'robot_pi'"):
        resolve(graph, {"robot_pi": "1.2.3.4"})
    with pytest.raises(GraphError, match="use_sim:='maybe' must be true or false"):
        resolve(graph, {"use_sim": "maybe"})
    with pytest.raises(GraphError, match="name:=value"):
        parse_launch_arguments(["use_sim=true"])


def test_malformed_graph_is_a_clear_error(tmp_path):
    bad = tmp_path / "graph.yaml"
    bad.write_text("nodes:\n  - name: x\n")
    with pytest.raises(GraphError, match="node 0 lacks"):
        load_graph(bad)
    bad.write_text("nodes: [\n")
    with pytest.raises(GraphError, match="cannot read"):
        load_graph(bad)


def _fixture_graph(tmp_path, first_mode="run"):
    (tmp_path / "p.yaml").write_text("a:\n  ros__parameters: {x: 1}\n")
    (tmp_path / "graph.yaml").write_text(
        textwrap.dedent(f"""
        arguments:
          mode: {{default: {first_mode}, sets: [upstream.mode]}}
        params_files: {{always: [p.yaml]}}
        nodes:
          - {{name: downstream, package: p, executable: e, module: graph_fixture_node, required: true}}
          - {{name: upstream, package: p, executable: e, module: graph_fixture_node, required: true}}
    """)
    )
    return load_graph(tmp_path / "graph.yaml")


def _env():
    return {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_launcher_prefixes_output_and_stops_upstream_first(tmp_path):
    out = io.StringIO()
    g = NodeGraph(resolve(_fixture_graph(tmp_path), {}), python=sys.executable, env=_env(), out=out)
    g.start()
    # Both nodes up (they print their arguments once their signal handlers are in place); a
    # deadline, not a fixed sleep: Python start-up takes seconds on a loaded two-core machine.
    t_end = time.monotonic() + 30.0
    while not all(f"[{n}] args" in out.getvalue() for n in ("upstream", "downstream")):
        assert time.monotonic() < t_end, out.getvalue()
        time.sleep(0.1)
    assert g.check() is None
    g.stop()
    lines = out.getvalue().splitlines()
    assert any(line.startswith("[upstream] args") and "mode:=run" in line for line in lines)
    stops = [line for line in lines if "stopping" in line]
    assert stops == ["[cdp-graph] stopping upstream", "[cdp-graph] stopping downstream"]
    assert "[upstream] stopped cleanly" in lines and "[downstream] stopped cleanly" in lines


def test_launcher_reports_a_dead_required_node_and_kills_stubborn_ones(tmp_path):
    out = io.StringIO()
    g = NodeGraph(resolve(_fixture_graph(tmp_path, "exit"), {}), python=sys.executable, env=_env(), out=out)
    g.start()
    t_end = time.monotonic() + 10
    while g.check() is None and time.monotonic() < t_end:
        time.sleep(0.1)
    assert g.check() == ("upstream", 3)
    g.stop(timeout_s=1.0)
    assert all(n.process.poll() is not None for n in g.nodes)


def _wait_for(out: io.StringIO, text: str, timeout_s: float = 30.0) -> None:
    t_end = time.monotonic() + timeout_s
    while text not in out.getvalue():
        assert time.monotonic() < t_end, out.getvalue()
        time.sleep(0.1)


def test_launcher_restarts_a_node_with_overrides_without_calling_it_dead(tmp_path):
    out = io.StringIO()
    g = NodeGraph(resolve(_fixture_graph(tmp_path), {}), python=sys.executable, env=_env(), out=out)
    g.start()
    try:
        _wait_for(out, "[upstream] args")
        old_pid = next(n.process.pid for n in g.nodes if n.spec.name == "upstream")
        g.restart_node("upstream", {"extra": "1"})
        assert g.check() is None  # its exit during the restart is not a failure
        _wait_for(out, "extra:=1")
        new = next(n for n in g.nodes if n.spec.name == "upstream")
        assert new.process.pid != old_pid and new.process.poll() is None
        assert "[upstream] stopped cleanly" in out.getvalue()  # the old one got SIGINT first
        assert next(s for s in g.specs if s.name == "upstream").overrides["extra"] == "1"
        with pytest.raises(GraphError, match="no running node"):
            g.restart_node("nonexistent", {})
    finally:
        g.stop(timeout_s=2.0)
    assert all(n.process.poll() is not None for n in g.nodes)


def test_nodes_die_with_a_killed_launcher(tmp_path):
    """die_with_parent: a SIGKILLed runner (no finally blocks run) still stops its nodes."""
    _fixture_graph(tmp_path)  # writes tmp_path/graph.yaml
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from cdp_bringup.graph import load_graph, resolve
        from cdp_bringup.launcher import NodeGraph
        g = NodeGraph(resolve(load_graph({str(tmp_path / "graph.yaml")!r}), {{}}), die_with_parent=True,
                      out=open({str(tmp_path / "out.log")!r}, "w"))
        g.start()
        print(" ".join(str(n.process.pid) for n in g.nodes), flush=True)
        time.sleep(600)
    """),
        ],
        stdout=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(1.0)
        parent.kill()
        parent.wait(10)
        t_end = time.monotonic() + 15.0
        alive = pids
        while alive and time.monotonic() < t_end:
            alive = [p for p in pids if _alive(p)]
            time.sleep(0.1)
        assert not alive, f"nodes {alive} outlived their killed launcher"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_home_configuration_matches_the_fast_path():
    from cdp_core.sim.env import FR3TaskEnv
    from cdp_core.sim.tasks import get_task

    env = FR3TaskEnv("reach_precise")
    env.reset(123)
    assert abs(get_task("reach_precise").episode_start(123, env.home_jitter)[1] - env.q).max() < 1e-9


def test_homing_trajectory_is_smooth_and_ends_at_the_goal():
    import numpy as np

    q0, q1 = np.zeros(7), np.full(7, 0.3)
    t, path = homing_trajectory(q0, q1, 10.0, speed=0.4)
    assert t[0] == 10.0 and np.allclose(path[0], q0) and np.allclose(path[-1], q1)
    assert np.max(np.abs(np.diff(path, axis=0))) / 0.1 <= 0.4 * 1.01  # smoothstep peak speed = 1.5 x mean


def test_summary_has_wilson_interval():
    rows = [EpisodeResult(i, i < 3, 4.0, 2.0 if i < 3 else None, 10, {}) for i in range(5)]
    s = summarize(rows)
    assert s["successes"] == 3 and 0.2 < s["success_ci95"][0] < 0.6 < s["success_ci95"][1] < 1.0
