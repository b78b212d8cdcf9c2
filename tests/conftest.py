from __future__ import annotations

import pytest

from cds_service.knowledge.loader import load_knowledge
from cds_service.knowledge.model import KnowledgeBase
from cds_service.settings import DEFAULT_KNOWLEDGE_DIR, Settings

from .security.issuer import FakeIssuer
from .security.issuer import auth_settings as make_auth_settings


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    """The shipped knowledge, loaded once: loading compiles every FHIRPath expression."""
    return load_knowledge(DEFAULT_KNOWLEDGE_DIR)


@pytest.fixture(scope="session")
def issuer() -> FakeIssuer:
    """A trusted CDS client with a generated ES384 key."""
    return FakeIssuer()


@pytest.fixture(scope="session")
def auth_settings(tmp_path_factory: pytest.TempPathFactory, issuer: FakeIssuer) -> Settings:
    """Settings with authentication on (the default), trusting `issuer`."""
    return make_auth_settings(tmp_path_factory.mktemp("auth"), issuer)
