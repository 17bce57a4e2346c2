"""The commands people type: lifecycle, status, describe, disks, delete (`kubectl wukong …`).

`commands.app` is the only public surface; `wukong.cli` merges it into the main app.
"""
