"""The method, once for every backend (VMC, Jeong et al., CVPR 2024; docs/method.md).

The noise algebra of a backend's schedule (:mod:`.schedule`: epsilon, v, x0 and flow velocities
from one another), inversion (:mod:`.inversion`: the sampler's ODE run backwards), sampling with
guidance (:mod:`.sampling`), the motion-distillation losses (:mod:`.motion`), the tuning loop with
fp32 master weights (:mod:`.tuning`) and its settings (:mod:`.tune_config`), generation's settings
(:mod:`.generate_config`), all of it on a loaded backend in :mod:`.pipeline`; the
appearance-invariant prompts (:mod:`.prompts`) and the paper's CLIP metrics (:mod:`.metrics`).
Nothing here knows a model family: a backend states its schedule and tunable modules.
"""
