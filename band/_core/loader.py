"""Load a service from a directory (main.py + config.yml) or a single .py file.

Settings are read first, then the module is imported with its own :class:`App` as
the current app, so ``from band import expose, settings`` binds to that service and
several services can be loaded into one process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import ConfigError
from . import settings as _settings
from .app import App, reset_current, set_current


def service_main(path: Path) -> Path:
    """The file to import for ``path``."""
    if path.is_dir():
        main = path / "main.py"
        if not main.is_file():
            raise ConfigError(f"{path}: a service directory needs a main.py")
        return main
    if path.suffix == ".py" and path.is_file():
        return path
    raise ConfigError(f"{path}: not a service directory or .py file")


def _warn_about_config(app: App, where: Path) -> None:
    """Mistakes that would otherwise pass silently: no config.yml, a misspelt framework key."""
    config = _settings.find_config(where)
    if config is None:
        if where.is_dir():
            app.logger.warning(
                f"{where} has no config.yml; the service runs as {app.name!r} with no settings "
                "(add config.yml to name it or to give it settings)"
            )
        return
    for key, known in _settings.misspelt_keys(app.settings):
        app.logger.warning(
            f"{config}: key {key!r} looks like a misspelt {known!r}, which band reads; "
            f"rename it to {known!r} if that was meant (band leaves {key!r} to the service as its own setting)"
        )


def load_service(path: str | Path, name: str | None = None) -> App:
    """Read the config, build the app, import the service code into it.

    Raises:
        ConfigError: no such service, a bad config, or a bad declaration in the code.
    """
    where = Path(path).resolve()
    main = service_main(where)
    settings = _settings.load(where)
    default_name = where.name if where.is_dir() else where.stem
    app = App(name or settings.get("name") or default_name, settings)
    _warn_about_config(app, where)
    module_name = f"band_service_{app.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, main)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{main}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    folder = str(main.parent)
    token = set_current(app)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        reset_current(token)
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    app.module = module
    return app
