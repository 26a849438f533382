"""The dashboards of a deployment as the panel lays them out, and the edits of the arrange mode.

A spec may list dashboards (:class:`edge.graph.DashboardSpec`: an id, a label, cards of ``task``,
``w`` columns and ``h`` rows); the first is the default one, at ``/deployments/{dep}/dashboard``.
A spec without any has one, :data:`DEFAULT_ID`, with every dashboard task in spec order. The
dashboard tasks on no dashboard (added in the editor since the layout was saved) are shown at the
end of the first one, so nothing the user adds is hidden; cards of tasks that are not dashboard
tasks (a type the catalog does not know yet) are kept in the layout but not drawn.

:class:`Layout` is a working copy the arrange mode edits (move, resize, move to another
dashboard, add, rename, delete a dashboard); :meth:`Layout.specs` gives what is saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edge.graph import MAX_CARDS, MAX_DASHBOARDS, MAX_SPAN, DashboardCard, DashboardSpec

__all__ = ["DEFAULT_ID", "Board", "Layout", "default_size"]

DEFAULT_ID = "main"
WIDE_KINDS = {"video_viewer": (2, 2), "web_viewer": (2, 2), "plot": (2, 1)}  # kinds that want room by default


def default_size(kind: str) -> tuple[int, int]:
    return WIDE_KINDS.get(kind, (1, 1))


@dataclass
class Board:
    """One dashboard being drawn or arranged."""

    id: str
    label: str | None
    cards: list[DashboardCard] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.label or self.id


@dataclass
class Layout:
    """Every dashboard of a deployment, with each dashboard task on at least one (see the module doc)."""

    boards: list[Board]

    @classmethod
    def of(cls, saved: list[DashboardSpec], kinds: dict[str, str]) -> Layout:
        """The layout of a spec's ``saved`` dashboards for its dashboard tasks (``kinds``: task id -> kind, in
        spec order)."""
        boards = [Board(d.id, d.label, list(d.cards)) for d in saved] or [Board(DEFAULT_ID, None)]
        placed = {card.task for board in boards for card in board.cards}
        first = boards[0]
        for task, kind in kinds.items():
            if task not in placed and len(first.cards) < MAX_CARDS:
                w, h = default_size(kind)
                first.cards.append(DashboardCard(task=task, w=w, h=h))
        return cls(boards)

    def board(self, board_id: str | None) -> Board | None:
        """The dashboard of that id (None: the first); None when there is no such one."""
        if board_id is None:
            return self.boards[0]
        return next((b for b in self.boards if b.id == board_id), None)

    def specs(self) -> list[DashboardSpec]:
        return [DashboardSpec(id=b.id, label=b.label, cards=list(b.cards)) for b in self.boards]

    # -- arranging ------------------------------------------------------------------------------
    @staticmethod
    def _index(board: Board, task: str) -> int:
        return next(i for i, card in enumerate(board.cards) if card.task == task)

    def move(self, board: Board, task: str, delta: int) -> bool:
        """Move a card ``delta`` places later (earlier when negative); False at either end."""
        i = self._index(board, task)
        j = i + delta
        if not 0 <= j < len(board.cards):
            return False
        board.cards.insert(j, board.cards.pop(i))
        return True

    def place(self, board: Board, task: str, at: str) -> bool:
        """Move a card to where the card of task ``at`` is (a card dropped on another); False if it is that one."""
        if task == at:
            return False
        target = self._index(board, at)  # taking its place: before it when coming from behind, after it otherwise
        board.cards.insert(target, board.cards.pop(self._index(board, task)))
        return True

    def resize(self, board: Board, task: str, *, dw: int = 0, dh: int = 0) -> bool:
        """Make a card wider/taller (or narrower/lower), within 1..:data:`MAX_SPAN`; False when it is at the bound."""
        i = self._index(board, task)
        card = board.cards[i]
        w, h = card.w + dw, card.h + dh
        if not (1 <= w <= MAX_SPAN and 1 <= h <= MAX_SPAN):
            return False
        board.cards[i] = DashboardCard(task=task, w=w, h=h)
        return True

    def move_to(self, board: Board, task: str, target_id: str) -> bool:
        """Move a card to the end of another dashboard (one that has no card of that task)."""
        target = self.board(target_id)
        if target is None or target is board or any(c.task == task for c in target.cards) \
                or len(target.cards) >= MAX_CARDS:
            return False
        target.cards.append(board.cards.pop(self._index(board, task)))
        return True

    def add(self, label: str) -> Board | None:
        """A new, empty dashboard (its id made from its label); None when there are :data:`MAX_DASHBOARDS`."""
        if len(self.boards) >= MAX_DASHBOARDS:
            return None
        base = re.sub(r"[^A-Za-z0-9_-]", "_", label.strip().lower())[:56].strip("_") or "dashboard"
        taken = {b.id for b in self.boards}
        board_id, n = base, 2
        while board_id in taken:
            board_id, n = f"{base}{n}", n + 1
        board = Board(board_id, label.strip()[:200] or None)
        self.boards.append(board)
        return board

    def remove(self, board: Board) -> bool:
        """Delete a dashboard; its cards go to the end of the first remaining one. False for the only one."""
        if len(self.boards) < 2:
            return False
        self.boards.remove(board)
        first = self.boards[0]
        have = {c.task for c in first.cards}
        first.cards.extend(c for c in board.cards if c.task not in have)
        del first.cards[MAX_CARDS:]
        return True
