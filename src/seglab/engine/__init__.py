"""Training engine: one loop for every task.

``task.py`` (the :class:`Task` contract and ``build_task``), ``trainer.py`` (the loop), ``hooks.py`` (evaluation,
LR, best tracking, checkpoints, early stop), ``reporting.py`` (run-directory files and console output),
``semantic.py`` / ``instance.py`` (the tasks), ``build.py`` (model, loaders, optimizer), ``precision.py``,
``schedules.py``, ``state.py`` (resumable counters and RNG state).
"""
