# The AWS AMI of every cadfleet host, from Debian 12's official AMI and the same playbook that
# builds the local fleet's base image (images/host-image.yml), so what is tested locally is what
# runs on AWS. The AMI id is published in SSM at /cadfleet/<environment>/host-ami, where the
# stacks pick it up with `use_host_image = true` (an `ami_id` still overrides it).
#
#   packer init images/aws && packer build -var environment=staging -var region=eu-west-1 images/aws
#
# Needs Packer >= 1.8 with the amazon and ansible plugins (Debian's packer 1.6.6 is too old for
# HCL2 plugin blocks), ansible-playbook on the machine that runs Packer, and AWS credentials
# that may run an instance, create an AMI and write that one SSM parameter.
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.1.0"
    }
  }
}

variable "environment" {
  type        = string
  description = "The cadfleet environment whose hosts use the image (the SSM parameter is per environment)."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "The environment must be lower-case letters, digits and dashes, 2 to 21 characters."
  }
}

variable "region" {
  type = string
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "A subnet with a route to the internet (packages); empty: the default VPC."
}

locals {
  timestamp     = formatdate("YYYYMMDDhhmmss", timestamp())
  ami_parameter = "/cadfleet/${var.environment}/host-ami"
}

source "amazon-ebs" "debian12" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id == "" ? null : var.subnet_id
  ssh_username  = "admin"
  # Packer's temporary key leaves the image with the build: no image carries a key of a build.
  ssh_clear_authorized_keys = true
  ami_name      = "cadfleet-host-${var.environment}-${local.timestamp}"

  source_ami_filter {
    owners      = ["136693071363"] # Debian's AMIs (https://wiki.debian.org/Cloud/AmazonEC2Image)
    most_recent = true
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }

  # The build instance and the image: IMDSv2 only, encrypted gp3 root, as the launch templates.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support  = "v2.0"
  encrypt_boot  = true
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 8
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    "cadfleet:environment" = var.environment
    "cadfleet:image"       = "host"
  }
}

build {
  sources = ["source.amazon-ebs.debian12"]

  provisioner "ansible" {
    playbook_file    = "${path.root}/../host-image.yml"
    extra_arguments  = ["-e", "host_image_target=aws", "-e", "host_image_region=${var.region}"]
    ansible_env_vars = ["ANSIBLE_CONFIG=${path.root}/../ansible.cfg"]
    use_proxy        = false
  }

  post-processor "manifest" {
    output = "packer-manifest.json"
  }

  # Publish the AMI id where the stacks read it (data type aws:ec2:image: SSM checks it is an AMI).
  post-processor "shell-local" {
    inline = [
      "ami=$(jq -r '.builds[-1].artifact_id' packer-manifest.json | cut -d: -f2)",
      "aws ssm put-parameter --region ${var.region} --name ${local.ami_parameter} --type String --data-type aws:ec2:image --overwrite --value \"$ami\"",
    ]
  }
}
