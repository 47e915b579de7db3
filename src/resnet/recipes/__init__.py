"""Training recipes shipped with the package; `resnet train --list-recipes` lists them."""
