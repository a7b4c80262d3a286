"""train() and train_step(), the same in every module.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def train(params, data=None, optimizer=None, steps=1, state=None, check_finite=False):
    """Run `steps` updates of `optimizer` (symgrad.optim.SGD/RMSprop/Adam or a dict
    like {"name": "sgd", "lr": 0.1}) inside one jitted loop.

    Returns (new params, loss history: the loss before each step). Pass the
    `state` returned by train_step to continue a run; train() starts afresh.
    check_finite=True: first check the data for NaN and inf (see loss()).
    """
    new_params, history, _ = train_step(params, data, optimizer, steps, state,
                                        check_finite)
    return new_params, history


def train_step(params, data=None, optimizer=None, steps=1, state=None, check_finite=False):
    """Like train(), also returning the optimizer state for the next call."""
    if optimizer is None:
        raise ArgumentError("train needs an optimizer, e.g. symgrad.optim.SGD(lr=0.01)")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ArgumentError(f"steps must be a non-negative integer, got {steps!r}")
    kind, hyper = optimizer_spec(optimizer)
    theta, given = _pack(params)
    columns = _columns(data, check_finite)
    if state is None:
        state = {"kind": kind, "step": 0, "buffers": np.zeros((N_STATE, theta.shape[0]))}
    elif state.get("kind") != kind or state["buffers"].shape != (N_STATE, theta.shape[0]):
        raise ArgumentError("the optimizer state does not belong to this optimizer and model")
    history = np.empty(int(steps))
    buffers = state["buffers"].copy()
    _trainer(columns)(theta, columns, kind, hyper, buffers, state["step"], int(steps),
                      history)
    new_state = {"kind": kind, "step": state["step"] + int(steps), "buffers": buffers}
    return _unpack(theta, given), history, new_state
