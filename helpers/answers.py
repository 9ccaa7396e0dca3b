"""Carry a student's answers from the run of their notebook to the run that grades them, as data and never as pickles.

The grader runs a submission twice (see ``book/instructors.md``). The first run executes the student's cells and
saves, where the exercise's check cell stood, the names the check reads (``save_answers``). The second run executes
the reference notebook, with those names loaded in place of its solution cells (``load_answers``), and its own
check cells. Nothing the first run wrote can run code in the second: answers travel in a file that
``torch.load(weights_only=True)`` reads (numbers, strings, tensors, lists, tuples, dicts), pictures and arrays as
tensors, and a function as its source code, which is screened and only defined, never run, when it is loaded.
"""

from __future__ import annotations

import ast
import dis
import importlib
import inspect
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from IPython import get_ipython
from IPython.core.inputtransformer2 import TransformerManager
from PIL import Image

from .checks import ExerciseFailed

KIND = "__answer_kind__"
# Modules a function answer may import or name; they are what the exercises need.
ALLOWED_MODULES = frozenset(
    {
        "math",
        "random",
        "statistics",
        "functools",
        "itertools",
        "collections",
        "typing",
        "numpy",
        "torch",
        "PIL",
        "diffusers",
        "transformers",
    }
)
# Names and attributes that reach the interpreter, the files or the grader instead of the answer's arithmetic.
BANNED_NAMES = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "input",
        "exit",
        "quit",
        "help",
        "memoryview",
        "sys",
        "os",
        "gc",
        "inspect",
        "ctypes",
        "builtins",
        "importlib",
        "subprocess",
        "signal",
        "socket",
        "shutil",
        "pathlib",
        "io",
        "helpers",
    }
)
BANNED_ATTRIBUTES = frozenset(
    {"load", "load_library", "ctypeslib", "system", "popen", "hub", "save"}
)


# Saving, in the student's kernel -----------------------------------------------------------------------------------


def save_answers(path: str, namespace: dict[str, Any], names: list[str]) -> None:
    """Write ``names`` from ``namespace`` to ``path``, unless every one is still ``...`` (or missing, or None): then
    nothing, and the exercise is not done. Any value can be written: one that cannot travel says so when loaded."""
    answers = {name: namespace.get(name, ...) for name in names}
    if any(value is not ... and value is not None for value in answers.values()):
        torch.save(
            {name: encode(value, namespace) for name, value in answers.items()}, path
        )


def encode(value: Any, namespace: dict[str, Any]) -> Any:
    """``value`` as plain data that ``torch.load(weights_only=True)`` reads back."""
    if value is ... or isinstance(
        value, (type(None), bool, int, float, str, torch.Tensor)
    ):
        return {KIND: "ellipsis"} if value is ... else value
    if isinstance(value, torch.Size):
        return {KIND: "size", "items": list(value)}
    if isinstance(value, (list, tuple)):
        items = [encode(item, namespace) for item in value]
        return items if isinstance(value, list) else {KIND: "tuple", "items": items}
    if isinstance(value, dict):
        return {
            KIND: "dict",
            "items": [
                [encode(k, namespace), encode(v, namespace)] for k, v in value.items()
            ],
        }
    return encode_object(value, namespace)


def encode_object(value: Any, namespace: dict[str, Any]) -> dict[str, Any]:
    """Arrays, numpy numbers, PIL images and functions; anything else is named by its type, for the message."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {
            KIND: "ndarray",
            "tensor": torch.from_numpy(np.ascontiguousarray(value).copy()),
        }
    if isinstance(value, np.generic):
        return {KIND: "numpy-number", "dtype": value.dtype.str, "value": value.item()}
    if isinstance(value, Image.Image):
        data = torch.frombuffer(bytearray(value.tobytes()), dtype=torch.uint8)
        return {
            KIND: "image",
            "mode": value.mode,
            "size": list(value.size),
            "data": data,
        }
    if isinstance(value, types.FunctionType):
        try:
            return {KIND: "function", **function_record(value, namespace)}
        except (OSError, TypeError, ValueError) as error:
            return {KIND: "unsupported", "type": f"function ({error})"}
    return {KIND: "unsupported", "type": type(value).__name__}


def function_record(
    function: types.FunctionType, namespace: dict[str, Any]
) -> dict[str, Any]:
    """A function's source, and the notebook's functions, imports and values it names, found by walking its code."""
    sources: dict[str, str] = {}
    imports: dict[str, str] = {}
    values: dict[str, Any] = {}

    def add(fn: types.FunctionType) -> None:
        if fn.__closure__:
            raise ValueError(
                "it uses variables of an enclosing function: define it at the top level of a cell"
            )
        sources[fn.__name__] = function_source(fn)
        for name in names_used(fn.__code__):
            if (
                name in sources
                or name in imports
                or name in values
                or name not in namespace
            ):
                continue
            found = namespace[name]
            if isinstance(found, types.ModuleType):
                imports[name] = found.__name__
            elif (
                isinstance(found, types.FunctionType) and found.__module__ == "__main__"
            ):
                add(found)
            elif (
                callable(found)
                and getattr(found, "__module__", None)
                and hasattr(found, "__qualname__")
            ):
                # from math import log10
                imports[name] = f"{found.__module__}:{found.__qualname__}"
            elif not isinstance(found, torch.nn.Module) and not is_unsupported(
                encoded := encode(found, namespace)
            ):
                # else (a model, a scheduler) the grading run has the reference's own
                values[name] = encoded

    add(function)
    return {
        "name": function.__name__,
        "sources": sources,
        "imports": imports,
        "values": values,
    }


def function_source(function: types.FunctionType) -> str:
    """A function's source: from Python's line cache, else (a cell run by ``%%time``) from the last cell in the
    kernel's history, as typed, that defines it at its top level."""
    try:
        return textwrap.dedent(inspect.getsource(function))
    except OSError:
        pass
    shell = get_ipython()
    for cell in reversed(
        shell.history_manager.input_hist_raw if shell is not None else []
    ):
        if cell.lstrip().startswith("%%"):
            cell = cell.lstrip().partition("\n")[2]
        try:
            tree = ast.parse(TransformerManager().transform_cell(cell))
        except SyntaxError:
            continue
        for statement in tree.body:
            if (
                isinstance(statement, ast.FunctionDef)
                and statement.name == function.__name__
            ):
                return ast.unparse(statement)
    raise OSError(f"the source of {function.__name__} was not found")


def is_unsupported(encoded: Any) -> bool:
    return isinstance(encoded, dict) and encoded.get(KIND) == "unsupported"


def names_used(code: types.CodeType) -> set[str]:
    """Global names a function's code (and the code nested in it: lambdas, comprehensions) looks up; attribute names
    (``x.shape``) are not among them."""
    loads = {
        op.argval
        for op in dis.get_instructions(code)
        if op.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    nested = [const for const in code.co_consts if isinstance(const, types.CodeType)]
    return loads.union(*(names_used(inner) for inner in nested))


# Loading, in the grading kernel ----------------------------------------------------------------------------------


def load_answers(
    path: str, names: list[str], namespace: dict[str, Any]
) -> dict[str, Any]:
    """The answers saved at ``path`` (each name ``...`` when the file is missing), functions defined, not run.

    Raises ``ExerciseFailed`` for an answer that cannot be carried (a value of another type, a function that reaches
    beyond its arithmetic), so the exercise fails with the reason.
    """
    if not Path(path).is_file():
        return dict.fromkeys(names, ...)
    saved = torch.load(path, weights_only=True)
    return {
        name: decode(saved.get(name, {KIND: "ellipsis"}), namespace, name)
        for name in names
    }


def decode(value: Any, namespace: dict[str, Any], name: str) -> Any:
    """The value ``encode`` wrote, rebuilt."""
    if isinstance(value, list):
        return [decode(item, namespace, name) for item in value]
    if not isinstance(value, dict) or KIND not in value:
        return value
    kind = value[KIND]
    items = (
        [decode(item, namespace, name) for item in value.get("items", [])]
        if kind != "dict"
        else []
    )
    rebuilt: dict[str, Callable[[], Any]] = {
        "ellipsis": lambda: ...,
        "size": lambda: torch.Size(items),
        "tuple": lambda: tuple(items),
        "dict": lambda: {
            decode(k, namespace, name): decode(v, namespace, name)
            for k, v in value["items"]
        },
        "ndarray": lambda: value["tensor"].numpy(),
        "numpy-number": lambda: np.dtype(value["dtype"]).type(value["value"]),
        "image": lambda: decode_image(value),
        "function": lambda: define_function(value, namespace, name),
    }
    if kind not in rebuilt:
        raise ExerciseFailed(
            f"`{name}` holds a {value.get('type', kind)}, which the grader cannot carry: bind the "
            "answer the exercise asks for (numbers, tensors, arrays, pictures, lists or a function)"
        )
    return rebuilt[kind]()


def decode_image(value: dict[str, Any]) -> Image.Image:
    return Image.frombytes(
        value["mode"], tuple(value["size"]), bytes(value["data"].numpy())
    )


def define_function(
    record: dict[str, Any], namespace: dict[str, Any], name: str
) -> Callable[..., Any]:
    """Define a carried function (and the functions it calls) in a scope of its own over the reference's names."""
    scope = dict(namespace)
    for alias, imported in record["imports"].items():
        module, _, attribute = imported.partition(":")
        expect_allowed_module(module, name)
        scope[alias] = importlib.import_module(module)
        for part in filter(None, attribute.split(".")):
            scope[alias] = getattr(scope[alias], part)
    for value_name, value in record["values"].items():
        scope[value_name] = decode(value, namespace, name)
    defined = {}
    for key, source in record["sources"].items():
        tree = screened(source, name)
        exec(
            compile(tree, f"<answer {name}>", "exec"), scope
        )  # defines the function; runs none of its body
        statement = tree.body[0]
        defined[key] = scope[
            statement.name
            if isinstance(statement, ast.FunctionDef)
            else statement.targets[0].id
        ]
    return defined[record["name"]]


def expect_allowed_module(module: str, name: str) -> None:
    if module.split(".")[0] not in ALLOWED_MODULES:
        raise ExerciseFailed(
            f"`{name}` uses the module {module}; an answer may use only "
            f"{', '.join(sorted(ALLOWED_MODULES))}"
        )


def screened(source: str, name: str) -> ast.Module:
    """The parsed source of one function answer, if it is a plain ``def`` (or ``f = lambda``) that keeps to
    arithmetic; annotations dropped and defaults kept only when they are constants, so defining it runs nothing."""
    tree = ast.parse(source)
    refuse = _Refusal(name)
    definition = tree.body[0] if len(tree.body) == 1 else None
    is_lambda = (
        isinstance(definition, ast.Assign)
        and len(definition.targets) == 1
        and isinstance(definition.targets[0], ast.Name)
        and isinstance(definition.value, ast.Lambda)
    )
    if (
        not (isinstance(definition, ast.FunctionDef) and not definition.decorator_list)
        and not is_lambda
    ):
        refuse(
            "write it as one plain `def` (no decorator, no class) at the top level of a cell"
        )
    nodes = list(ast.walk(tree))
    local_names = {
        node.id
        for node in nodes
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    local_names |= {node.arg for node in nodes if isinstance(node, ast.arg)}
    for node in nodes:
        refuse.if_unsafe(node, local_names)
    return tree


class _Refusal:
    """Raises ``ExerciseFailed`` naming the answer and what in its code the grader will not run."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, why: str) -> None:
        raise ExerciseFailed(f"the function `{self.name}` cannot be graded: {why}")

    def if_unsafe(self, node: ast.AST, local_names: set[str]) -> None:
        if isinstance(node, ast.Name) and node.id in BANNED_NAMES:
            self(f"it uses `{node.id}`, which reaches beyond the answer's arithmetic")
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith("_") or node.attr in BANNED_ATTRIBUTES
        ):
            self(f"it uses the attribute `.{node.attr}`")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            self("it declares `global` or `nonlocal` names")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            ):
                expect_allowed_module(module, self.name)
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(
            node.ctx, (ast.Store, ast.Del)
        ):
            root = node
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if not (isinstance(root, ast.Name) and root.id in local_names):
                self(
                    "it changes an object it did not make (only its own variables may change)"
                )
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            self.strip_annotations_and_check_defaults(node)

    def strip_annotations_and_check_defaults(
        self, node: ast.FunctionDef | ast.Lambda
    ) -> None:
        arguments = node.args
        for default in [*arguments.defaults, *filter(None, arguments.kw_defaults)]:
            try:
                ast.literal_eval(default)
            except ValueError:
                self("a default value that is not a constant")
        for arg in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            arguments.vararg,
            arguments.kwarg,
        ]:
            if arg is not None:
                arg.annotation = None
        if isinstance(node, ast.FunctionDef):
            node.returns = None
