"""SPS (paper Algorithm 1) as a layer over the GRPO-family trainers: `trainer` (the phase clock and the
IRL update inside the Trainer), `config` (the recipe's `sps` section, SPSConfig), `irl` (the IRL tensor
helpers, testable without a Trainer), `l2te` (the pure L2TE selection). Importing this package is cheap; `trainer` imports torch and TRL.
"""
