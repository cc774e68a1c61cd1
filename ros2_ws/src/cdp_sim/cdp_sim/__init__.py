"""The simulated robot of the stack: franky-sim's libfranka-protocol server with a task scene."""
