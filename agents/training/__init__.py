"""Training and scoring the RAM agent (REINFORCE with a learned baseline) on the task's native vector env.

One module per concern, each importable on its own:

=============  ==========================================================================================
``config``     :class:`TrainConfig`, and what it builds: devices, the task's vector envs, a fresh network
``rollout``    one batch of training episodes and its loss (hybrid rule, pure RL, early answers)
``loop``       :func:`train`: epochs of updates, val scores, checkpoints; :func:`train_and_test` adds the test
``run_state``  the run folder, ``last.pt``/``best.pt``, random streams, resuming, :func:`load_model`
``scoring``    every image of a split played once: val and test errors, with their intervals
``policy``     :class:`BatchPolicy`, a trained network over batches of observations (scoring, recording)
``report``     the lines a run prints (rank 0 alone under torchrun)
=============  ==========================================================================================
"""
