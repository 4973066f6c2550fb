"""Token mixers, one per file. Importing this package imports every module in it, and each
module's ``@register_mixer`` adds it to the registry: adding a mixer is adding a file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
