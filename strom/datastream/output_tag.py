"""``OutputTag``: names a side output of an operator, as ``pyflink.datastream.OutputTag``."""

from __future__ import annotations

from typing import Any

__all__ = ["OutputTag"]


class OutputTag:
    """A side output's name (and, optionally, its type).

    Example::

        late = OutputTag("late-data", Types.TUPLE([Types.STRING(), Types.INT()]))

        class Split(ProcessFunction):
            def process_element(self, value, ctx):
                if value < 0:
                    yield late, value         # to the side output, as in PyFlink
                else:
                    yield value               # to the main output

        main = ds.process(Split())
        main.get_side_output(late).print()

    Every function with side outputs in PyFlink (process, keyed process, co-process,
    broadcast process, process window and join functions) emits to one by yielding
    ``(output_tag, value)``; as in PyFlink such a pair stays in the main output when no side
    output of the operator is read. ``ctx.output(tag, value)`` is a Strom extension that does
    the same. Two tags with the same id name the same side output.
    """

    def __init__(self, tag_id: str, type_info: Any = None) -> None:
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError(f"an OutputTag needs a non-empty string id; got {tag_id!r}")
        self.tag_id = tag_id
        self.type_info = type_info

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(self.tag_id)

    def __repr__(self) -> str:
        return f"OutputTag({self.tag_id!r})"


def tag_id_of(output_tag: Any) -> str:
    """The id of an ``OutputTag``, with a clear error for anything else."""
    if not isinstance(output_tag, OutputTag):
        raise TypeError(f"expected an OutputTag; got {type(output_tag).__name__}")
    return output_tag.tag_id
