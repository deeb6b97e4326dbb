"""The API's response models, one module per resource, on one base (`base.ApiModel`)."""
