from .wrapper import *


#------------------------------------------------------------------------------
#  Replaceable Backbones
#------------------------------------------------------------------------------

SUPPORTED_BACKBONES = {
    'mobilenetv2': MobileNetV2Backbone,
}
