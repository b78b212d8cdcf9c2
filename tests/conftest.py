from __future__ import annotations

import pytest

from cds_service.knowledge.loader import load_knowledge
from cds_service.knowledge.model import KnowledgeBase
from cds_service.settings import DEFAULT_KNOWLEDGE_DIR


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    """The shipped knowledge, loaded once: loading compiles every FHIRPath expression."""
    return load_knowledge(DEFAULT_KNOWLEDGE_DIR)
