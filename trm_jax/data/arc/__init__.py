"""ARC-AGI tasks: loading, the official 30x30 encoding, task augmentations, the cached dataset build."""

from trm_jax.data.arc.augment import (IDENTITY, PUZZLE_ID_SEPARATOR, Augmentation, choose_augmentations,
                                      parse_puzzle_identifier, puzzle_identifier_name)
from trm_jax.data.arc.build import (ARC_NUM_AUG, ArcBuild, arc_datasets, augmentation_names, build_arc,
                                    build_arc_datasets, encode_task_pairs, eval_task_pairs, parse_source,
                                    task_augmentations, translation_rng)
from trm_jax.data.arc.encoding import (ARC_SEQ_LEN, ARC_VOCAB_SIZE, EOS_TOKEN, PAD_TOKEN, crop_sizes, decode_grid,
                                       encode_grids, grid_hash)
from trm_jax.data.arc.tasks import (ARC_MAX_GRID_SIZE, ARC_TASK_SETS, builtin_sources, load_tasks, validate_grid,
                                    validate_task)
from trm_jax.data.grids import dihedral_transform, inverse_dihedral_transform

__all__ = [
    "ARC_MAX_GRID_SIZE", "ARC_NUM_AUG", "ARC_SEQ_LEN", "ARC_TASK_SETS", "ARC_VOCAB_SIZE", "EOS_TOKEN", "IDENTITY",
    "PAD_TOKEN", "PUZZLE_ID_SEPARATOR", "ArcBuild", "Augmentation", "arc_datasets", "augmentation_names", "build_arc",
    "build_arc_datasets", "builtin_sources", "choose_augmentations", "crop_sizes", "decode_grid", "dihedral_transform",
    "encode_grids", "encode_task_pairs", "eval_task_pairs", "grid_hash", "inverse_dihedral_transform", "load_tasks",
    "parse_puzzle_identifier", "parse_source", "puzzle_identifier_name", "task_augmentations", "translation_rng",
    "validate_grid", "validate_task",
]
