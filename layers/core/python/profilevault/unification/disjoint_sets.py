"""Union-find over the integers 0..n-1 (path compression, union by size): the one copy the engine's clustering,
the rule-set check and the benchmarks' diagnostics share."""


class DisjointSets:
    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, i: int, j: int) -> bool | None:
        """Joins the sets of i and j: True, or None when they were one already."""
        ra, rb = self.find(i), self.find(j)
        if ra == rb:
            return None
        self._link(ra, rb)
        return True

    def _link(self, ra: int, rb: int) -> tuple[int, int]:
        """Joins two roots, the smaller set under the larger. -> (root, the root it absorbed)."""
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra, rb
