"""The by-value decision, the lookups it rests on and the by-value
reductions of functions, classes, enums and type variables, under the
private names of the reference module (client code imports them from
``cloudpickle.cloudpickle``): the engine's own functions, so that callers
get exactly the rules ``dumps`` runs (src/by_value.rs,
src/which_module.rs, src/reduce/function_reduction.rs,
src/reduce/class_reduction.rs, src/typevar_reduction.rs).
"""

import pickle

from ._engine import (
    _class_getnewargs,
    _class_getstate,
    _class_reduce,
    _decompose_typevar,
    _dynamic_class_reduce,
    _dynamic_function_reduce,
    _enum_getnewargs,
    _enum_getstate,
    _extract_class_dict,
    _function_getnewargs,
    _function_getstate,
    _function_reduce,
    _get_bases,
    _getattribute,
    _is_registered_pickle_by_value,
    _lookup_module_and_qualname,
    _public_module_name,
    _should_pickle_by_reference,
    _typevar_by_reference,
    _typevar_reduce,
    _whichmodule,
)

__all__ = [
    "_class_getnewargs",
    "_class_getstate",
    "_class_reduce",
    "_decompose_typevar",
    "_dynamic_class_reduce",
    "_dynamic_function_reduce",
    "_enum_getnewargs",
    "_enum_getstate",
    "_extract_class_dict",
    "_function_getnewargs",
    "_function_getstate",
    "_function_reduce",
    "_get_bases",
    "_getattribute",
    "_is_registered_pickle_by_value",
    "_lookup_module_and_qualname",
    "_pickle_getattribute",
    "_public_module_name",
    "_should_pickle_by_reference",
    "_typevar_by_reference",
    "_typevar_reduce",
    "_whichmodule",
]

# pickle's own attribute walker, which the reference module imports under
# this name.
_pickle_getattribute = getattr(pickle, "_getattribute", None)
