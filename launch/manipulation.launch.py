"""ros2 launch cdp_bringup manipulation.launch.py [use_sim:=true] [robot_ip:=...] [model:=...] [backend:=...]

Starts the node graph described by graph.yaml (next to this file) with launch_ros ``Node``
actions. ``cdp-graph`` starts the same graph, resolved by the same code
(``cdp_bringup.graph``), on machines without ROS 2 launch.
"""

from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from cdp_bringup.graph import load_graph, resolve

GRAPH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graph.yaml")


def _nodes(context, *_args, **_kwargs):
    graph = load_graph(GRAPH)
    given = {name: LaunchConfiguration(name).perform(context) for name in graph.get("arguments", {})}
    # Every name:=value on the command line is a launch configuration: one graph.yaml does not
    # declare is a typo (robot_ipp:=...), refused here exactly as cdp-graph refuses it.
    given.update({k: v for k, v in context.launch_configurations.items() if k not in given})
    actions = []
    for spec in resolve(graph, given):
        node = Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            output="screen",
            emulate_tty=True,
            parameters=[*spec.params_files, spec.typed_overrides()],
            # A required node exiting ends the launch; the driver stops last-commanded motion
            # and the arm holds (libfranka ends control in place).
            on_exit=[Shutdown(reason=f"required node {spec.name} exited")] if spec.required else None,
        )
        actions.append(TimerAction(period=spec.start_delay_s, actions=[node]) if spec.start_delay_s > 0 else node)
    return actions


def generate_launch_description() -> LaunchDescription:
    graph = load_graph(GRAPH)
    arguments = [
        DeclareLaunchArgument(name, default_value=str(spec.get("default", "")), description=spec.get("description", ""))
        for name, spec in graph.get("arguments", {}).items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
